"""docker-compose.yml: valid for compose's own parser and the Compose Specification, secrets only from
the environment, model settings for the workers, and every promptloop service's command a real
promptloop or celery invocation. Running a compose worker and its healthcheck against a real Redis is
tests/integration/test_deploy_units.py."""

from __future__ import annotations

import json
import re
import subprocess
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.conftest import unavailable
from tests.deploy.deployfiles import (
    COMPOSE_FILE, COMPOSE_TEST_SECRETS, ROOT, InterpolationError, celery_queues, compose_services, docker_compose,
    dockerfile_entrypoint, is_promptloop_image, is_usage, load_compose, run_help, run_shell_help, service_argv,
    service_environment, strings, worker_queues,
)

MODEL_SETTINGS = ("PROMPTLOOP_MODELS", "PROMPTLOOP_LM_API_BASE")


def compose_env(**extra) -> dict:
    """A minimal environment for compose: PATH and the test secrets (nothing else from this shell)."""
    import os

    return {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"), **COMPOSE_TEST_SECRETS, **extra}


def run_compose(*args: str, env: dict | None = None, file: Path = COMPOSE_FILE) -> subprocess.CompletedProcess:
    binary = docker_compose()
    if binary is None:
        unavailable("docker-compose is not installed (Debian: apt-get install --no-install-recommends docker-compose); "
                    ".ci/run installs it")
    return subprocess.run([binary, "-f", str(file), "--project-directory", str(ROOT), *args], cwd=ROOT,
                          env=compose_env() if env is None else env, capture_output=True, text=True, timeout=120)


def promptloop_services(env: dict | None = None) -> dict[str, dict]:
    return {name: svc for name, svc in compose_services(env).items() if is_promptloop_image(svc)}


# --- compose's parser and the specification -------------------------------------------------------


def test_docker_compose_accepts_the_file():
    proc = run_compose("config", "-q")
    assert proc.returncode == 0, proc.stderr


def test_docker_compose_refuses_a_broken_file(tmp_path):
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE_FILE.read_text().replace("stop_grace_period: 60s", "stop_grace_periood: 60s", 1))
    proc = run_compose("config", "-q", file=broken)
    assert proc.returncode != 0 and "stop_grace_periood" in proc.stderr


@pytest.mark.parametrize("secret", sorted(COMPOSE_TEST_SECRETS))
def test_every_secret_is_required_with_no_default(secret):
    env = compose_env()
    del env[secret]
    proc = run_compose("config", "-q", env=env)
    assert proc.returncode != 0 and secret in proc.stderr, f"compose started without {secret}: {proc.stderr}"


def test_no_secret_has_a_default_in_the_file():
    text = "\n".join(strings(load_compose()))
    for match in re.finditer(r"\$\{([A-Z0-9_]+)(:?[-?])?([^}]*)\}", text):
        name, op = match.group(1), match.group(2)
        if re.search(r"PASSWORD|SECRET|TOKEN|AUTH|KEY", name):
            assert op in (":?", "?"), f"${{{name}}} must be required (${{{name}:?...}}), not defaulted: {match.group(0)}"
    for name in COMPOSE_TEST_SECRETS:
        with pytest.raises(InterpolationError, match=name):
            compose_services({name: ""})


def compose_spec_schema() -> dict:
    """The Compose Specification's JSON schema, as check-jsonschema vendors it (no network)."""
    try:
        path = resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json")
    except ModuleNotFoundError:
        unavailable("check-jsonschema is not installed (pip install check-jsonschema; it is in the test extra)")
    return json.loads(path.read_text())


def spec_errors(document: dict) -> list[str]:
    validator = jsonschema.Draft202012Validator(compose_spec_schema())
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def test_the_file_matches_the_compose_specification():
    assert spec_errors(load_compose()) == []
    broken = load_compose()
    broken["services"]["worker"]["healthcheck"] = {"tset": ["CMD", "true"]}
    assert any("tset" in e for e in spec_errors(broken))


# --- what the services get -------------------------------------------------------------------------


def test_workers_get_the_model_settings():
    models = '{"3b": "ollama_chat/qwen2.5:3b"}'
    services = promptloop_services({"PROMPTLOOP_MODELS": models, "PROMPTLOOP_LM_API_BASE": "http://lm:11434"})
    for name, svc in services.items():
        env = service_environment(svc)
        assert env.get("PROMPTLOOP_MODELS") == models, f"{name} does not pass PROMPTLOOP_MODELS"
        assert env.get("PROMPTLOOP_LM_API_BASE") == "http://lm:11434", f"{name} does not pass PROMPTLOOP_LM_API_BASE"
    # Unset, PROMPTLOOP_MODELS is not passed at all (an empty value would not parse), and the API base
    # defaults to the Docker host, which extra_hosts makes reachable.
    for name, svc in promptloop_services().items():
        env = service_environment(svc)
        assert env["PROMPTLOOP_MODELS"] is None, f"{name}: {env['PROMPTLOOP_MODELS']!r}"
        assert env["PROMPTLOOP_LM_API_BASE"] == "http://host.docker.internal:11434"
        assert "host.docker.internal:host-gateway" in svc.get("extra_hosts", [])


def test_docker_compose_passes_the_model_settings():
    env = compose_env(PROMPTLOOP_MODELS='{"7b": "ollama_chat/qwen2.5:7b"}', PROMPTLOOP_LM_API_BASE="http://lm:1")
    proc = run_compose("config", env=env)
    assert proc.returncode == 0, proc.stderr
    services = yaml.safe_load(proc.stdout)["services"]
    for name in ("ingest", "worker", "optimizer", "migrate", "cli"):
        environment = services[name]["environment"]
        assert environment["PROMPTLOOP_MODELS"] == '{"7b": "ollama_chat/qwen2.5:7b"}', name
        assert environment["PROMPTLOOP_LM_API_BASE"] == "http://lm:1", name


def test_each_queue_has_its_worker_service_and_optimize_is_apart_from_evaluate():
    consumed: dict[str, list[str]] = {}
    for name, svc in promptloop_services().items():
        queues = worker_queues(service_argv(svc, dockerfile_entrypoint()))
        if queues is None:
            continue
        assert set(queues) <= set(celery_queues()), f"{name} consumes unknown queues {queues}"
        assert not {"evaluate", "optimize"} <= set(queues), f"{name} mixes evaluate and optimize"
        for q in queues:
            consumed.setdefault(q, []).append(name)
    assert sorted(consumed) == sorted(celery_queues()), f"queues without a worker service: {consumed}"


def test_every_worker_service_has_a_ping_healthcheck():
    services = promptloop_services()
    workers = [n for n, s in services.items() if worker_queues(service_argv(s, dockerfile_entrypoint())) is not None]
    assert workers
    for name in workers:
        test = services[name].get("healthcheck", {}).get("test")
        assert test and test[0] == "CMD-SHELL", f"{name} has no shell healthcheck: {test}"
        # The worker names itself celery@<container hostname> (no -n), which the ping must address.
        assert "inspect ping" in test[1] and "celery@$HOSTNAME" in test[1], test


def test_exactly_one_beat_and_flower_behind_auth():
    services = promptloop_services()
    entry = dockerfile_entrypoint()
    beats = [n for n, s in services.items() if service_argv(s, entry)[1:2] == ["beat"]]
    assert beats == ["beat"] and services["beat"].get("deploy", {}).get("replicas") == 1
    flowers = [n for n, s in services.items() if "flower" in service_argv(s, entry)]
    assert flowers == ["flower"]
    argv = service_argv(services["flower"], entry)
    assert argv[:2] == ["sh", "/app/deploy/flower.sh"], f"Flower must start through the credential check: {argv}"
    raw = load_compose()["services"]["flower"]["environment"]["FLOWER_BASIC_AUTH"]
    assert raw.startswith("${FLOWER_BASIC_AUTH:?"), raw
    for port in services["flower"].get("ports", []):
        assert str(port).startswith("127.0.0.1:"), f"Flower published beyond loopback: {port}"


def test_the_dockerfile_ships_the_flower_check():
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert re.search(r"^COPY deploy/flower\.sh \./deploy/flower\.sh$", dockerfile, re.M)
    assert "WORKDIR /app" in dockerfile


def test_the_cli_service_runs_promptloop_against_the_stack():
    raw = load_compose()["services"]["cli"]
    assert raw.get("profiles") == ["cli"], "`up` must not start the cli service"
    text = COMPOSE_FILE.read_text()
    for example in ("docker compose run --rm cli status", "docker compose run --rm cli evaluate"):
        assert example in text
    # Every documented `run --rm cli ...` line is a real promptloop command line.
    entry = dockerfile_entrypoint()
    documented = re.findall(r"^#\s+docker compose run --rm cli ([^\n#]+)", text, re.M)
    assert len(documented) >= 2
    for line in documented:
        ran = run_help([*entry, *line.split()])
        assert is_usage(ran), f"`{line.strip()}` is not a promptloop command:\n{ran.output[-1500:]}"


# --- the commands are real -------------------------------------------------------------------------


def test_every_service_command_is_a_real_promptloop_or_celery_invocation():
    entry = dockerfile_entrypoint()
    assert entry == ["promptloop"]
    services = promptloop_services()
    assert {"migrate", "ingest", "worker", "optimizer", "beat", "flower", "cli"} <= set(services)
    for name, svc in services.items():
        argv = service_argv(svc, entry)
        program = argv[2] if argv[0] == "sh" else argv[0]
        assert program in ("promptloop", "celery"), f"{name}: {argv}"
        ran = run_help(argv, service_environment(svc))
        assert is_usage(ran), f"{name}: {' '.join(argv)} --help exited {ran.returncode}:\n{ran.output[-2000:]}"
        check = svc.get("healthcheck", {}).get("test")
        if check:
            ran = run_shell_help(check[1], {**service_environment(svc), "HOSTNAME": "container1"})
            assert is_usage(ran), f"{name} healthcheck {check[1]!r} --help:\n{ran.output[-2000:]}"


def test_a_misspelt_command_fails_the_check():
    assert not is_usage(run_help(["promptloop", "wurker", "-Q", "ingest"]))
    assert not is_usage(run_help(["promptloop", "worker", "--queus", "ingest"]))
    assert not is_usage(run_shell_help("celery -A workers.app inspectt ping"))
    assert not is_usage(run_help(["sh", "/app/deploy/flower.sh", "celery", "-A", "workers.app", "flower"],
                                 {"FLOWER_BASIC_AUTH": None}))
