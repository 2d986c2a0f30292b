"""deploy/k8s: offline validation of the Kubernetes manifests.

Core resources are checked against Kubernetes' own OpenAPI schemas in strict mode (unknown fields
refused) with kubernetes-validate, which ships the schemas; KEDA's ScaledObject and TriggerAuthentication
against KEDA's CRD models (cloudcoil.models.keda, generated from KEDA's CRDs); then what no schema knows:
each Celery queue consumed by one Deployment and scaled on its own Redis list, the event stream's
consumer group scaled on its pending count, one beat, Flower behind auth, one migration Job, every
secret from the Secret and every container command a real promptloop/celery invocation.
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess

import pytest
import yaml

from shared.constants import GROUP, STREAM
from tests.conftest import unavailable
from tests.deploy.deployfiles import (
    K8S, celery_queues, container_argv, containers, generated_secrets, is_usage, kustomization, manifests,
    parse_env_file, pod_spec, run_help, run_shell_help, without_file, worker_queues,
)

#: Kubernetes versions the manifests must be valid for: the oldest KEDA 2.12+ supports and the newest
#: kubernetes-validate knows.
K8S_VERSIONS = ("1.29", "latest")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|AUTH|DATABASE_URL|CREDENTIAL|API_KEY")


def kinds(docs, kind):
    return [d for d in docs if d.get("kind") == kind]


def by_name(docs, kind):
    return {d["metadata"]["name"]: d for d in kinds(docs, kind)}


# --- schema checks ----------------------------------------------------------------------------------


def kubernetes_problems(doc: dict) -> list[str]:
    try:
        import kubernetes_validate
        from kubernetes_validate.utils import latest_version
    except ImportError:
        unavailable("kubernetes-validate is not installed (pip install kubernetes-validate; it is in the test extra)")
    problems = []
    for version in K8S_VERSIONS:
        version = latest_version() if version == "latest" else version
        try:
            kubernetes_validate.validate(without_file(doc), version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(map(str, exc.path))
            problems.append(f"{doc['kind']}/{doc['metadata']['name']} (Kubernetes {version}): {path}: {exc.message}")
    return problems


def keda_problems(doc: dict) -> list[str]:
    """KEDA's CRD model; the model ignores unknown fields, so compare what it kept with what was given."""
    try:
        from cloudcoil.models.keda import v1alpha1
    except ImportError:
        unavailable("cloudcoil.models.keda is not installed (pip install cloudcoil.models.keda; it is in the test extra)")
    from pydantic import ValidationError

    model = {"ScaledObject": v1alpha1.ScaledObject, "TriggerAuthentication": v1alpha1.TriggerAuthentication}.get(doc["kind"])
    if model is None:
        return [f"{doc['kind']}: not a KEDA kind these manifests should use"]
    given = without_file(doc)
    try:
        parsed = model.model_validate(given)
    except ValidationError as exc:
        return [f"{doc['kind']}/{doc['metadata']['name']}: {exc}"]
    kept = parsed.model_dump(by_alias=True, exclude_unset=True, mode="json")
    return [f"{doc['kind']}/{doc['metadata']['name']}: unknown field {path}" for path in _dropped(given, kept, "")]


def _dropped(given, kept, path):
    if isinstance(given, dict):
        if not isinstance(kept, dict):
            return [path or "."]
        out = []
        for key, value in given.items():
            if key not in kept:
                out.append(f"{path}.{key}".lstrip("."))
            elif not (isinstance(value, dict) and value == {} and kept[key] == {}):
                out += _dropped(value, kept[key], f"{path}.{key}")
        return out
    if isinstance(given, list) and isinstance(kept, list):
        return [p for i, (g, k) in enumerate(zip(given, kept)) for p in _dropped(g, k, f"{path}[{i}]")]
    return []


def test_kustomization_lists_every_manifest_and_builds_the_secret_from_an_untracked_file():
    kust = kustomization()
    listed = set(kust["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk, f"listed {sorted(listed)}, on disk {sorted(on_disk)}"
    assert kust["namespace"] == "promptloop"
    (gen,) = kust["secretGenerator"]
    assert gen["name"] == "promptloop-secrets" and gen["envs"] == ["secrets.env"]
    assert (K8S / "secrets.env.example").is_file()
    assert "secrets.env" in (K8S / ".gitignore").read_text().split()
    # KEDA's TriggerAuthentication names the Secret: a hash suffix would break the reference.
    assert kust["generatorOptions"]["disableNameSuffixHash"] is True


def test_core_resources_match_the_kubernetes_schemas():
    docs = [d for d in manifests() if not d["apiVersion"].startswith("keda.sh/")] + generated_secrets()
    assert {d["kind"] for d in docs} >= {"Namespace", "ConfigMap", "Secret", "Deployment", "Job", "Service"}
    problems = [p for d in docs for p in kubernetes_problems(d)]
    assert problems == []


def test_keda_resources_match_kedas_crds():
    docs = [d for d in manifests() if d["apiVersion"].startswith("keda.sh/")]
    assert {d["kind"] for d in docs} == {"ScaledObject", "TriggerAuthentication"}
    assert all(d["apiVersion"] == "keda.sh/v1alpha1" for d in docs)
    problems = [p for d in docs for p in keda_problems(d)]
    assert problems == []


def test_the_schema_checks_refuse_broken_manifests():
    docs = manifests()
    deployment = copy.deepcopy(by_name(docs, "Deployment")["promptloop-beat"])
    deployment["spec"]["template"]["spec"]["containers"][0]["comand"] = ["promptloop"]
    assert any("comand" in p for p in kubernetes_problems(deployment))
    deployment = copy.deepcopy(by_name(docs, "Deployment")["promptloop-beat"])
    deployment["spec"]["replicas"] = "one"
    assert kubernetes_problems(deployment)
    scaled = copy.deepcopy(by_name(docs, "ScaledObject")["promptloop-worker"])
    scaled["spec"]["scaleTargetReff"] = scaled["spec"].pop("scaleTargetRef")
    assert any("scaleTargetRef" in p and "Field required" in p for p in keda_problems(scaled))
    scaled = copy.deepcopy(by_name(docs, "ScaledObject")["promptloop-worker"])
    scaled["spec"]["triggers"][0]["authenticationReff"] = scaled["spec"]["triggers"][0].pop("authenticationRef")
    assert any("spec.triggers[0].authenticationReff" in p for p in keda_problems(scaled))
    scaled = copy.deepcopy(by_name(docs, "ScaledObject")["promptloop-worker"])
    scaled["spec"]["minReplicaCount"] = "zero"
    assert keda_problems(scaled)


def test_kustomize_builds_the_set(tmp_path):
    """Where kubectl is installed, kustomize itself renders the directory (with the example secrets);
    the rendered set must pass the same schema checks. Without kubectl the structural tests above still run."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed: kustomize rendering not checked (the manifests are still validated)")
    work = tmp_path / "k8s"
    shutil.copytree(K8S, work)
    shutil.copy(work / "secrets.env.example", work / "secrets.env")
    proc = subprocess.run([kubectl, "kustomize", str(work)], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0 and "unknown command" in proc.stderr:
        pytest.skip(f"this kubectl has no kustomize: {proc.stderr[:200]}")
    assert proc.returncode == 0, proc.stderr
    rendered = [d for d in yaml.safe_load_all(proc.stdout) if d]
    assert all(d["metadata"].get("namespace") == "promptloop" for d in rendered if d["kind"] != "Namespace")
    assert by_name(rendered, "Secret")["promptloop-secrets"]
    problems = [p for d in rendered for p in (keda_problems(d) if d["apiVersion"].startswith("keda.sh/")
                                              else kubernetes_problems(d))]
    assert problems == []
    (work / "secrets.env").unlink()     # no secrets, no build
    assert subprocess.run([kubectl, "kustomize", str(work)], capture_output=True, timeout=120).returncode != 0


# --- what no schema knows ---------------------------------------------------------------------------


def configmap(docs) -> dict:
    return by_name(docs, "ConfigMap")["promptloop-config"]["data"]


def container_env_names(doc: dict, container: dict, docs) -> set[str]:
    names = {e["name"] for e in container.get("env", [])}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            names |= set(by_name(docs, "ConfigMap")[source["configMapRef"]["name"]]["data"])
        if "secretRef" in source:
            names |= set(generated_secrets()[0]["stringData"])
    return names


def scaling_problems(docs: list[dict]) -> list[str]:
    """Each Celery queue consumed by exactly one Deployment, scaled by a ScaledObject on that queue's
    Redis list; ingest also on the event stream's consumer group; scalers reach Redis as the pods do."""
    problems = []
    deployments = by_name(docs, "Deployment")
    scaled = {d["spec"]["scaleTargetRef"]["name"]: d for d in kinds(docs, "ScaledObject")}
    auths = by_name(docs, "TriggerAuthentication")
    secret_keys = {s["metadata"]["name"]: set(s["stringData"]) for s in generated_secrets()}
    config = configmap(docs)
    consumers: dict[str, list[str]] = {}
    for name, dep in deployments.items():
        for c in containers(dep):
            for q in worker_queues(container_argv(c)) or []:
                consumers.setdefault(q, []).append(name)
    for q in celery_queues():
        if len(consumers.get(q, [])) != 1:
            problems.append(f"queue {q} is consumed by {consumers.get(q, [])}, not exactly one Deployment")
    for q, names in consumers.items():
        if q not in celery_queues():
            problems.append(f"{names} consume {q!r}, which is no Celery queue (workers/queues.py)")
    for name, dep in deployments.items():
        (worker,) = [c for c in containers(dep)] if len(containers(dep)) == 1 else [None]
        queues = worker_queues(container_argv(worker)) if worker else None
        so = scaled.get(name)
        if queues is None:
            if so is not None:
                problems.append(f"{name} is not a worker but a ScaledObject scales it")
            continue
        if so is None:
            problems.append(f"worker Deployment {name} has no ScaledObject")
            continue
        if "replicas" in dep["spec"]:
            problems.append(f"{name} sets replicas, which would fight KEDA at every apply")
        env_names = container_env_names(dep, worker, docs)
        lists = set()
        streams = set()
        for trig in so["spec"]["triggers"]:
            meta = trig.get("metadata", {})
            where = f"ScaledObject {so['metadata']['name']} trigger {trig.get('name', trig['type'])}"
            for key in ("addressFromEnv", "usernameFromEnv", "passwordFromEnv", "hostFromEnv", "portFromEnv"):
                if key in meta and meta[key] not in env_names:
                    problems.append(f"{where}: {key}={meta[key]} is not in {name}'s container environment")
            if not ({"address", "addressFromEnv"} & set(meta) or {"host", "hostFromEnv"} & set(meta)):
                problems.append(f"{where}: no Redis address")
            if meta.get("databaseIndex", "0") != config.get("REDIS_DB", "0"):
                problems.append(f"{where}: databaseIndex {meta.get('databaseIndex')} != REDIS_DB {config.get('REDIS_DB')}")
            ref = (trig.get("authenticationRef") or {}).get("name")
            if ref is not None:
                if ref not in auths:
                    problems.append(f"{where}: authenticationRef {ref} does not exist")
                else:
                    for target in auths[ref]["spec"].get("secretTargetRef", []):
                        if target["key"] not in secret_keys.get(target["name"], set()):
                            problems.append(f"{ref}: secret {target['name']} has no key {target['key']}")
            elif "passwordFromEnv" not in meta:
                problems.append(f"{where}: no password (authenticationRef or passwordFromEnv): Redis has users")
            if trig["type"] == "redis":
                if "listName" not in meta or "keyName" in meta:
                    problems.append(f"{where}: a redis list trigger needs listName (and no keyName)")
                elif not meta.get("listLength", "5").isdigit():
                    problems.append(f"{where}: listLength {meta.get('listLength')!r} is not a number")
                lists.add(meta.get("listName"))
            elif trig["type"] == "redis-streams":
                if meta.get("stream") != STREAM or meta.get("consumerGroup") != GROUP:
                    problems.append(f"{where}: stream {meta.get('stream')}/{meta.get('consumerGroup')} is not "
                                    f"{STREAM}/{GROUP} (shared/constants.py)")
                counts = {k: meta[k] for k in ("pendingEntriesCount", "lagCount", "streamLength") if k in meta}
                if len(counts) != 1 or not all(v.isdigit() for v in counts.values()):
                    problems.append(f"{where}: exactly one numeric pendingEntriesCount, lagCount or streamLength, got {counts}")
                streams.add("lagCount" if "lagCount" in meta else "pendingEntriesCount" if "pendingEntriesCount" in meta
                            else "streamLength")
            else:
                problems.append(f"{where}: unexpected trigger type {trig['type']}")
        if lists != set(queues):
            problems.append(f"{name} consumes {sorted(queues)} but is scaled on lists {sorted(lists)}")
        if "ingest" in queues and "pendingEntriesCount" not in streams:
            problems.append(f"{name} drains the stream but is not scaled on its pending count")
        if "ingest" not in queues and streams:
            problems.append(f"{name} does not drain the stream but is scaled on it")
        if so["spec"].get("minReplicaCount", 0) < 1:
            problems.append(f"{name} may scale to zero and kill running tasks (a running task is off its list)")
        if "ingest" in queues:
            args = container_argv(worker)
            concurrency = int(args[args.index("-c") + 1]) if "-c" in args else 2
            parallel = int(config.get("PROMPTLOOP_INGEST_PARALLEL", 4))
            if so["spec"].get("maxReplicaCount", 100) * concurrency > parallel:
                problems.append(f"{name}: {so['spec'].get('maxReplicaCount')} pods x {concurrency} processes exceed "
                                f"PROMPTLOOP_INGEST_PARALLEL={parallel} drains")
    for target in scaled:
        if target not in deployments:
            problems.append(f"a ScaledObject targets {target}, which does not exist")
    return problems


def test_workers_per_queue_group_scaled_by_keda_on_their_queues():
    docs = manifests()
    assert scaling_problems(docs) == []
    # evaluate and optimize never share a Deployment.
    for dep in kinds(docs, "Deployment"):
        for c in containers(dep):
            assert not {"evaluate", "optimize"} <= set(worker_queues(container_argv(c)) or [])


@pytest.mark.parametrize("break_it, expect", [
    (lambda docs: by_name(docs, "ScaledObject")["promptloop-worker"]["spec"]["triggers"][0]["metadata"].update(
        listName="evaluat"), "scaled on lists"),
    (lambda docs: by_name(docs, "ScaledObject")["promptloop-ingest"]["spec"]["triggers"][0]["metadata"].update(
        consumerGroup="ingest"), "shared/constants.py"),
    (lambda docs: by_name(docs, "ScaledObject")["promptloop-ingest"]["spec"]["triggers"].pop(0), "pending count"),
    (lambda docs: by_name(docs, "Deployment")["promptloop-optimizer"]["spec"]["template"]["spec"]["containers"][0]
        ["args"].__setitem__(2, "optimize,evaluate"), "evaluate is consumed by"),
    (lambda docs: by_name(docs, "ScaledObject")["promptloop-optimizer"]["spec"].update(minReplicaCount=0), "scale to zero"),
    (lambda docs: by_name(docs, "ScaledObject")["promptloop-ingest"]["spec"].update(maxReplicaCount=10), "exceed"),
    (lambda docs: by_name(docs, "TriggerAuthentication")["promptloop-redis"]["spec"]["secretTargetRef"][0].update(
        key="REDIS_PASS"), "has no key"),
    (lambda docs: by_name(docs, "ScaledObject")["promptloop-worker"]["spec"]["triggers"][1]["metadata"].update(
        addressFromEnv="REDIS_HOST"), "not in promptloop-worker's container environment"),
])
def test_the_scaling_check_refuses_broken_scaling(break_it, expect):
    docs = copy.deepcopy(manifests())
    break_it(docs)
    problems = scaling_problems(docs)
    assert any(expect in p for p in problems), problems


def beat_problems(docs) -> list[str]:
    problems = []
    beats = [(d, c) for d in kinds(docs, "Deployment") for c in containers(d) if container_argv(c)[1:2] == ["beat"]]
    if len(beats) != 1:
        return [f"{len(beats)} beat containers, not exactly one"]
    dep, _ = beats[0]
    if dep["spec"].get("replicas") != 1:
        problems.append(f"beat replicas {dep['spec'].get('replicas')}, not 1")
    if dep["spec"].get("strategy", {}).get("type") != "Recreate":
        problems.append("beat must use the Recreate strategy (a rolling update runs two beats at once)")
    if any(so["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"] for so in kinds(docs, "ScaledObject")):
        problems.append("beat is autoscaled")
    return problems


def test_exactly_one_beat():
    docs = manifests()
    assert beat_problems(docs) == []
    broken = copy.deepcopy(docs)
    by_name(broken, "Deployment")["promptloop-beat"]["spec"]["strategy"] = {"type": "RollingUpdate"}
    assert beat_problems(broken)


def test_flower_behind_basic_auth_from_the_secret():
    docs = manifests()
    flower = by_name(docs, "Deployment")["promptloop-flower"]
    (c,) = containers(flower)
    argv = container_argv(c)
    assert argv[:2] == ["sh", "/app/deploy/flower.sh"] and argv[2:6] == ["celery", "-A", "workers.app", "flower"], argv
    (auth,) = [e for e in c["env"] if e["name"] == "FLOWER_BASIC_AUTH"]
    assert auth["valueFrom"]["secretKeyRef"] == {"name": "promptloop-secrets", "key": "FLOWER_BASIC_AUTH"}
    # The example secret is a placeholder, which the wrapper refuses: copying it unedited starts no Flower.
    example = parse_env_file(K8S / "secrets.env.example")["FLOWER_BASIC_AUTH"]
    ran = run_help(argv, {"FLOWER_BASIC_AUTH": example})
    assert ran.returncode == 2 and "placeholder" in ran.output
    service = by_name(docs, "Service")["promptloop-flower"]
    assert service["spec"].get("type", "ClusterIP") == "ClusterIP", "Flower must not be exposed directly"


def test_one_migration_job_and_no_container_migrates_on_start():
    docs = manifests()
    jobs = kinds(docs, "Job")
    assert [j["metadata"]["name"] for j in jobs] == ["promptloop-migrate"]
    (c,) = containers(jobs[0])
    assert container_argv(c) == ["promptloop", "init"]
    assert pod_spec(jobs[0])["restartPolicy"] in ("OnFailure", "Never")
    for doc in docs:
        if doc.get("kind") == "Job":
            continue
        for c in containers(doc):
            argv = container_argv(c)
            assert argv[1:2] != ["init"], f"{doc['metadata']['name']} runs `promptloop init`: that is the Job's"


def secret_problems(docs) -> list[str]:
    problems = []
    secret_keys = {s["metadata"]["name"]: set(s["stringData"]) for s in generated_secrets()}
    config = configmap(docs)
    for key, value in config.items():
        if SECRET_NAME.search(key) or re.search(r"://[^/@\s]*:[^/@\s]+@", str(value)):
            problems.append(f"ConfigMap holds a secret: {key}")
    if kinds(docs, "Secret"):
        problems.append("a Secret is committed in the manifests: it comes from secrets.env (secretGenerator)")
    for doc in docs:
        for c in containers(doc):
            where = f"{doc['metadata']['name']}/{c['name']}"
            defined = set()
            for source in c.get("envFrom", []):
                if "configMapRef" in source:
                    defined |= set(by_name(docs, "ConfigMap")[source["configMapRef"]["name"]]["data"])
                if "secretRef" in source:
                    problems.append(f"{where}: envFrom a whole Secret hands every container every secret")
            for env in c.get("env", []):
                name = env["name"]
                if "value" in env:
                    refs = re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", env["value"])
                    missing = [r for r in refs if r not in defined]
                    if missing:
                        problems.append(f"{where}: {name} refers to {missing}, not defined before it")
                    if SECRET_NAME.search(name) or re.search(r"://[^/@\s]*:(?!\$\()[^/@\s]+@", env["value"]):
                        problems.append(f"{where}: {name} has a literal value; secrets come from the Secret")
                else:
                    ref = env.get("valueFrom", {}).get("secretKeyRef")
                    if ref is not None and ref["key"] not in secret_keys.get(ref["name"], set()):
                        problems.append(f"{where}: {name} reads {ref['name']}/{ref['key']}, which secrets.env.example lacks")
                    if SECRET_NAME.search(name) and ref is None:
                        problems.append(f"{where}: {name} does not come from a Secret")
                defined.add(name)
    return problems


def test_secrets_come_from_the_secret_only():
    docs = manifests()
    assert secret_problems(docs) == []
    names = {e["name"] for d in docs for c in containers(d) for e in c.get("env", [])}
    assert {"REDIS_URL", "DATABASE_URL", "FLOWER_BASIC_AUTH", "REDIS_PASSWORD"} <= names
    broken = copy.deepcopy(docs)
    env = containers(by_name(broken, "Deployment")["promptloop-worker"])[0]["env"]
    for e in env:
        if e["name"] == "REDIS_URL":
            e["value"] = "redis://worker:hunter2hunter2@redis:6379/0"
        if e["name"] == "DATABASE_URL":
            e.pop("valueFrom")
            e["value"] = "postgresql+psycopg://u:p@db/promptloop"
    problems = secret_problems(broken)
    assert any("REDIS_URL has a literal" in p for p in problems) and any("DATABASE_URL" in p for p in problems)


def test_the_redis_url_is_built_for_the_worker_user():
    docs = manifests()
    config = configmap(docs)
    assert config["REDIS_USERNAME"] == "worker"      # deploy/redis/users.acl.template
    assert re.fullmatch(r"[^:/\s]+:\d+", config["REDIS_ADDRESS"])
    for doc in docs:
        for c in containers(doc):
            for e in c.get("env", []):
                if e["name"] == "REDIS_URL":
                    assert e["value"] == "redis://$(REDIS_USERNAME):$(REDIS_PASSWORD)@$(REDIS_ADDRESS)/$(REDIS_DB)"


def test_the_configmap_settings_are_valid_promptloop_settings(monkeypatch):
    from shared.settings import load_settings

    config = configmap(manifests())
    for key, value in config.items():
        monkeypatch.setenv(key, value)
    settings = load_settings()
    assert settings.models and settings.lm_api_base == config["PROMPTLOOP_LM_API_BASE"]


def test_every_container_command_is_a_real_promptloop_or_celery_invocation():
    seen = set()
    for doc in manifests():
        for c in containers(doc):
            argv = container_argv(c)
            if tuple(argv) in seen:
                continue
            seen.add(tuple(argv))
            ran = run_help(argv, {"FLOWER_BASIC_AUTH": "ops:Zq8flowerTest77k"})
            assert is_usage(ran), f"{doc['metadata']['name']}: {' '.join(argv)} --help:\n{ran.output[-2000:]}"
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                command = c.get(probe, {}).get("exec", {}).get("command")
                if command:
                    assert command[:2] == ["sh", "-c"] and "celery@$HOSTNAME" in command[2], command
                    ran = run_shell_help(command[2], {"HOSTNAME": "pod-1"})
                    assert is_usage(ran), f"{doc['metadata']['name']} {probe}: {command}:\n{ran.output[-2000:]}"
