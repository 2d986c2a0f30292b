"""The systemd units in deploy/: rendered with systemd's rules, they start real promptloop processes.

Each unit's ExecStart is rendered as systemd would (specifiers, then splitting, then variables from
Environment= and the example env files), and the result must name programs that exist in this checkout
and Celery node names Celery accepts. Running the rendered lines against a real Redis and PostgreSQL is
tests/integration/test_deploy_units.py.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from celery.utils.nodenames import default_nodename, host_format

from tests.conftest import unavailable
from tests.deploy.deployfiles import (
    DEPLOY, ENV_FILE_EXAMPLES, ROOT, SystemdUnit, UnitError, celery_queues, host_units, is_usage, local_argv,
    localize, run_help, unit_instances, worker_queues,
)

MIGRATE = "promptloop-migrate.service"
HOST = "deploy-host.example"


def unit(name: str) -> SystemdUnit:
    return SystemdUnit.load(DEPLOY / name)


def all_rendered() -> list[tuple[str, str, list[str]]]:
    """(unit name, Exec key, argv) for every Exec line of every unit and documented instance."""
    out = []
    for path in host_units():
        u = SystemdUnit.load(path)
        for instance in unit_instances(u):
            for key in ("ExecStartPre", "ExecStart", "ExecStartPost", "ExecStop", "ExecReload"):
                for argv in u.exec_lines(key, instance, hostname=HOST):
                    out.append((u.name_for(instance), key, argv))
    return out


def celery_node_problem(nodename: str) -> str | None:
    """Why Celery would refuse ``nodename`` (it expands %h/%n/%d/%i/%I itself and refuses the rest)."""
    try:
        expanded = host_format(default_nodename(nodename))
    except (KeyError, ValueError) as exc:
        return f"{nodename!r}: {exc}"
    if "%" in expanded:
        return f"{nodename!r} still holds a % after Celery's expansion: {expanded!r}"
    return None


def node_name(argv: list[str]) -> str | None:
    for flag in ("-n", "--hostname"):
        if flag in argv:
            return argv[argv.index(flag) + 1]
    return None


# --- the renderer itself can fail ----------------------------------------------------------------


def test_the_renderer_applies_systemd_rules_and_refuses_what_systemd_would(tmp_path):
    path = tmp_path / "demo-worker@.service"
    path.write_text("[Service]\nEnvironment=Q=%i C=2 \"SPACED=a b\"\nEnvironmentFile=/etc/demo.env\n"
                    "ExecStart=/bin/run -Q ${Q} -c $C -n %i@%H --pct=100%% --unit=%n \\\n  --word=$WORDS\n"
                    "ExecStart=\nExecStart=-/bin/real $WORDS ${SPACED} $$HOME\n")
    (tmp_path / "demo.env").write_text("# comment\nC=3\nWORDS=one two\nJSON={\"a\": \"b/c\"}\n")
    u = SystemdUnit.load(path)
    files = {"/etc/demo.env": tmp_path / "demo.env"}
    env = u.environment("x1", files, HOST)
    assert env == {"Q": "x1", "C": "3", "SPACED": "a b", "WORDS": "one two", "JSON": '{"a": "b/c"}'}
    # ExecStart= (empty) reset the list; $WORDS alone splits, ${SPACED} stays one word, $$ is a dollar.
    assert u.exec_lines("ExecStart", "x1", env_files=files, hostname=HOST) == [
        ["/bin/real", "one", "two", "a b", "$HOME"]]

    path.write_text("[Service]\nExecStart=/bin/run -n worker%i@%%H\n")
    argv = SystemdUnit.load(path).exec_lines("ExecStart", "1", env_files={}, hostname=HOST)[0]
    assert node_name(argv) == "worker1@%H"              # the old unit's line, rendered as systemd does
    assert "Unknown format %H" in celery_node_problem(node_name(argv))

    for bad, message in (("ExecStart=/bin/run %Z\n", "unknown or unsupported specifier %Z"),
                         ("ExecStart=/bin/run ${NOPE}\n", "${NOPE} is not set"),
                         ("ExecStart=/bin/run $NOPE\n", "$NOPE is not set"),
                         ("EnvironmentFile=/etc/missing.env\nExecStart=/bin/true\n", "is required and not provided")):
        path.write_text("[Service]\n" + bad)
        with pytest.raises(UnitError, match=message.replace("$", r"\$").replace("{", r"\{").replace("}", r"\}")):
            SystemdUnit.load(path).exec_lines("ExecStart", "1", env_files={}, hostname=HOST)
    path.write_text("[Service]\nEnvironmentFile=-/etc/missing.env\nExecStart=/bin/true %I\n")
    assert SystemdUnit.load(path).exec_lines("ExecStart", "a\\x2cb", env_files={}, hostname=HOST) == [["/bin/true", "a,b"]]


# --- every unit ---------------------------------------------------------------------------------


def test_every_exec_line_renders_to_programs_in_this_checkout():
    rendered = all_rendered()
    assert {name for name, _, _ in rendered} >= {MIGRATE, "promptloop-beat.service", "promptloop-flower.service",
                                                "promptloop-worker@ingest.service"}
    for name, key, argv in rendered:
        program = Path(localize(argv[0]))
        assert program.is_absolute(), f"{name} {key}: {argv[0]} is not an absolute path (systemd needs one)"
        assert program.exists() and program.stat().st_mode & 0o111, f"{name} {key}: {program} is not an executable here"
        if program.name == "sh":
            script = Path(localize(argv[1]))
            assert script.is_file(), f"{name} {key}: the script {argv[1]} is not in the checkout ({script})"


def test_worker_instances_consume_one_queue_set_each_under_valid_node_names():
    worker = unit("promptloop-worker@.service")
    instances = unit_instances(worker)
    # The unit documents one instance per Celery queue, so no queue is left without a worker.
    assert sorted(instances) == sorted(celery_queues()), f"documented instances {instances}"
    seen_nodes = set()
    for instance in instances:
        (argv,) = worker.exec_lines("ExecStart", instance, hostname=HOST)
        assert argv[1:2] == ["worker"], argv
        assert worker_queues(argv) == [instance], f"{instance}: consumes {worker_queues(argv)}"
        name = node_name(argv)
        assert name is not None and celery_node_problem(name) is None, celery_node_problem(name or "")
        assert name == f"{instance}@{HOST}"
        seen_nodes.add(name)
        # The concurrency is a number after rendering (it comes from Environment=).
        assert argv[argv.index("-c") + 1].isdigit()
    assert len(seen_nodes) == len(instances)
    # evaluate and optimize never share processes in the default instances.
    assert not any({"evaluate", "optimize"} <= set(worker_queues(a) or [])
                   for a in (worker.exec_lines("ExecStart", i, hostname=HOST)[0] for i in instances))


@pytest.mark.parametrize("instance", ["1", "eval-2", "ingest"])
def test_any_instance_gets_a_node_name_celery_accepts(instance):
    """Whatever the instance is called, systemd's rendering must leave Celery a valid node name
    (the old unit's `-n worker%i@%%H` became `worker1@%H`, which Celery refuses)."""
    (argv,) = unit("promptloop-worker@.service").exec_lines("ExecStart", instance, hostname=HOST)
    name = node_name(argv)
    assert name is not None, f"no -n in {argv}: two instances on one host would share celery@{HOST}"
    assert celery_node_problem(name) is None, celery_node_problem(name)
    assert name.endswith(f"@{HOST}") and instance in name


def test_a_per_instance_env_file_overrides_queues_and_concurrency(tmp_path):
    worker = unit("promptloop-worker@.service")
    override = tmp_path / "worker-evaluate.env"
    override.write_text("WORKER_QUEUES=evaluate,control\nWORKER_CONCURRENCY=4\n")
    files = {**ENV_FILE_EXAMPLES, "/etc/promptloop/worker-evaluate.env": override}
    (argv,) = worker.exec_lines("ExecStart", "evaluate", env_files=files, hostname=HOST)
    assert worker_queues(argv) == ["evaluate", "control"] and argv[argv.index("-c") + 1] == "4"


def test_migrations_run_once_in_their_own_unit_that_the_others_require():
    migrate = unit(MIGRATE)
    assert migrate.value("Service", "Type") == "oneshot"
    assert migrate.value("Service", "RemainAfterExit") == "yes"    # active after success: not rerun per replica
    (argv,) = migrate.exec_lines("ExecStart", hostname=HOST)
    assert Path(argv[0]).name == "promptloop" and argv[1:] == ["init"]
    for name, key, argv in all_rendered():
        if name != MIGRATE:
            assert not (Path(argv[0]).name == "promptloop" and "init" in argv[1:2]), \
                f"{name} {key} runs `promptloop init`: migrations belong to {MIGRATE} only"
    for name in ("promptloop-worker@.service", "promptloop-beat.service", "promptloop-flower.service"):
        u = unit(name)
        assert MIGRATE in u.words("Unit", "Requires"), f"{name} must Require= {MIGRATE}"
        assert MIGRATE in u.words("Unit", "After"), f"{name} must start After= {MIGRATE}"


def test_workers_stop_warm():
    worker = unit("promptloop-worker@.service")
    # SIGTERM to the main process only: Celery's warm shutdown. With the default control-group mode the
    # pool processes get SIGTERM too and die mid-task.
    assert worker.value("Service", "KillMode") == "mixed"
    assert worker.value("Service", "KillSignal", "SIGTERM") == "SIGTERM"
    assert int(worker.value("Service", "TimeoutStopSec", "90")) >= 30


def test_flower_refuses_to_start_without_usable_credentials():
    flower = unit("promptloop-flower.service")
    (argv,) = flower.exec_lines("ExecStart", hostname=HOST)
    assert Path(argv[1]).name == "flower.sh" and argv[3:6] == ["-A", "workers.app", "flower"], argv
    assert "--address=127.0.0.1" in argv
    env = flower.environment()
    assert env["FLOWER_BASIC_AUTH"] == "admin:CHANGE_ME"      # the example's placeholder

    def start(auth):
        extra = {**env, "FLOWER_BASIC_AUTH": auth}
        return run_help(argv, extra)

    for auth, why in ((None, "is not set"), ("", "is not set"), ("admin:CHANGE_ME", "placeholder"),
                      ("admin", "must be user:password"), (":abcdefghijklmn", "without a user name"),
                      ("ops:short", "at least 12 characters"), ("ops:abcdefghijklmn,x:y", "'x' must have at least")):
        ran = start(auth)
        assert ran.returncode == 2 and why in ran.output and "Flower not started" in ran.output, (auth, ran)
    ran = start("ops:Zq8flowerTest77k,ro:Wm3readOnly55x")
    assert is_usage(ran) and "flower" in ran.output.lower(), ran.output[-2000:]
    # A refusal is final: no restart loop on a configuration error.
    assert "2" in flower.words("Service", "RestartPreventExitStatus")


def test_every_rendered_command_accepts_its_options():
    """The programs the units run exist and accept the subcommand and options given (``--help``)."""
    for name, key, argv in all_rendered():
        if Path(argv[0]).name in ("promptloop", "celery") or Path(argv[1:2][0] if argv[1:] else "").name == "flower.sh":
            extra = {"FLOWER_BASIC_AUTH": "ops:Zq8flowerTest77k"}
            ran = run_help(argv, extra)
            assert is_usage(ran), f"{name} {key}: {' '.join(argv)} --help exited {ran.returncode}:\n{ran.output[-2000:]}"


def test_systemd_accepts_the_units(tmp_path):
    """``systemd-analyze verify`` on the units, with the checkout and the example env files in place of
    /opt/promptloop and /etc/promptloop: syntax, specifiers, dependencies, executables."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        unavailable("systemd-analyze not installed (Debian: apt-get install systemd)")
    names = []
    for path in host_units():
        text = path.read_text().replace("/opt/promptloop", str(ROOT))
        for production, example in ENV_FILE_EXAMPLES.items():
            text = text.replace(production, str(example))
        (tmp_path / path.name).write_text(text)
        u = SystemdUnit.load(path)
        names += [u.name_for(i) for i in unit_instances(u)]
    proc = subprocess.run([analyze, "verify", "--man=no", *sorted(set(names))], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    noise = [line for line in (proc.stdout + proc.stderr).splitlines()
             # The Debian redis-server unit is not installed here; the ACL unit only orders itself before it.
             if line.strip() and "redis-server.service" not in line]
    assert proc.returncode == 0 and not noise, "\n".join(noise) or proc.stderr


def test_systemd_analyze_catches_a_broken_unit(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        unavailable("systemd-analyze not installed (Debian: apt-get install systemd)")
    (tmp_path / "broken@.service").write_text("[Service]\nExecStart=/bin/true -n %i@%Z\n")
    proc = subprocess.run([analyze, "verify", "--man=no", "broken@x.service"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "%Z" in proc.stderr + proc.stdout
