"""Reading the deploy files the way their tools do: systemd units, compose files, Kubernetes manifests.

No container engine, systemd manager or cluster runs here, so the tests read the files with these
helpers and run the commands they name on this machine:

- ``SystemdUnit`` parses a unit file and renders its ``Exec*=`` lines the way systemd does: specifiers
  (``%i %I %n %N %p %P %j %J %H %l %%``), then splitting and unquoting, then ``$VAR``/``${VAR}`` from
  ``Environment=`` and ``EnvironmentFile=`` (files override ``Environment=``, as in systemd). What
  systemd would refuse or silently blank (an unknown specifier, an unset variable) raises ``UnitError``.
- ``interpolate`` applies compose's variable syntax (``${X}``, ``${X:-default}``, ``${X:?message}``,
  ``$$``) to a loaded compose file.
- ``local_argv`` turns a path inside the installed tree (``/opt/promptloop`` on hosts, ``/app`` in the
  image) into this checkout, so a deployed command line runs here as written.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Iterable, Mapping

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE_FILE = ROOT / "docker-compose.yml"
VENV_BIN = ROOT / ".venv" / "bin"

#: Where the units expect the checkout (README: /opt/promptloop) and the image has it (WORKDIR /app).
HOST_PREFIX = "/opt/promptloop"
IMAGE_PREFIX = "/app"
#: The env files the units read, and the examples shipped for them.
ENV_FILE_EXAMPLES = {
    "/etc/promptloop/promptloop.env": DEPLOY / "promptloop.env.example",
    "/etc/promptloop/redis.env": DEPLOY / "redis.env.example",
}


class UnitError(ValueError):
    """A unit that systemd would refuse, or run with a blank where a value was meant."""


# --- systemd -------------------------------------------------------------------------------------


def _unescape_unit_name(text: str) -> str:
    """systemd's unit_name_unescape: ``\\xNN`` becomes the byte it names (``-`` stays; %f differs)."""
    return re.sub(r"\\x([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), text)


@dataclass
class SystemdUnit:
    path: Path
    #: section -> [(key, value)] in file order (keys repeat: ExecStart=, Environment=...).
    sections: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> "SystemdUnit":
        unit = cls(Path(path))
        section = None
        pending = ""
        for raw in Path(path).read_text().splitlines():
            line = pending + raw.strip() if pending else raw.strip()
            if line.endswith("\\"):          # continuation: backslash-newline becomes a space
                pending = line[:-1] + " "
                continue
            pending = ""
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                if not line.endswith("]"):
                    raise UnitError(f"{path.name}: bad section header {line!r}")
                section = line[1:-1]
                unit.sections.setdefault(section, [])
                continue
            if section is None or "=" not in line:
                raise UnitError(f"{path.name}: {line!r} is not KEY=VALUE inside a section")
            key, _, value = line.partition("=")
            unit.sections[section].append((key.strip(), value.strip()))
        return unit

    @property
    def is_template(self) -> bool:
        return self.path.stem.endswith("@")

    def values(self, section: str, key: str) -> list[str]:
        """Every value of ``key``; an empty assignment resets the list, as systemd does for lists."""
        out: list[str] = []
        for k, v in self.sections.get(section, []):
            if k == key:
                out = [] if v == "" else out + [v]
        return out

    def value(self, section: str, key: str, default: str | None = None) -> str | None:
        values = self.values(section, key)
        return values[-1] if values else default

    def words(self, section: str, key: str) -> list[str]:
        """Space-separated list settings (Requires=, After=...) across all their lines."""
        return [w for v in self.values(section, key) for w in v.split()]

    def name_for(self, instance: str | None = None) -> str:
        """The unit name systemd gives this file (``promptloop-worker@ingest.service`` for an instance)."""
        if self.is_template:
            if not instance:
                raise UnitError(f"{self.path.name} is a template: name an instance")
            return self.path.name.replace("@.", f"@{instance}.", 1)
        return self.path.name

    def specifiers(self, instance: str | None = None, hostname: str | None = None) -> dict[str, str]:
        name = self.name_for(instance)
        base, _, _suffix = name.rpartition(".")
        prefix, at, inst = base.partition("@")
        host = hostname or socket.gethostname()
        last = prefix.rsplit("-", 1)[-1]
        return {
            "n": name, "N": base, "p": prefix, "P": _unescape_unit_name(prefix),
            "i": inst if at else "", "I": _unescape_unit_name(inst) if at else "",
            "j": last, "J": _unescape_unit_name(last),
            "H": host, "l": host.split(".")[0], "%": "%",
        }

    def resolve(self, text: str, spec: Mapping[str, str]) -> str:
        """Specifier expansion; an unknown one is an error (systemd refuses the line)."""
        out = []
        i = 0
        while i < len(text):
            c = text[i]
            if c != "%":
                out.append(c)
                i += 1
                continue
            if i + 1 >= len(text):
                raise UnitError(f"{self.path.name}: a lone % at the end of {text!r} (write %% for a percent sign)")
            s = text[i + 1]
            if s not in spec:
                raise UnitError(f"{self.path.name}: unknown or unsupported specifier %{s} in {text!r} "
                                "(write %% for a literal percent sign)")
            out.append(spec[s])
            i += 2
        return "".join(out)

    def environment(self, instance: str | None = None, env_files: Mapping[str, Path] | None = None,
                    hostname: str | None = None) -> dict[str, str]:
        """The service's environment: Environment= first, then each EnvironmentFile= in order.

        ``env_files`` maps a path as the unit names it to a local file; a path missing from it is an
        error unless the unit marks it optional (``-``), exactly when systemd would fail to start.
        """
        env_files = dict(ENV_FILE_EXAMPLES if env_files is None else env_files)
        spec = self.specifiers(instance, hostname)
        env: dict[str, str] = {}
        for value in self.values("Service", "Environment"):
            for word in shlex.split(self.resolve(value, spec)):
                key, eq, val = word.partition("=")
                if not eq or not key:
                    raise UnitError(f"{self.path.name}: Environment= word {word!r} is not NAME=VALUE")
                env[key] = val
        for value in self.values("Service", "EnvironmentFile"):
            path = self.resolve(value, spec)
            optional = path.startswith("-")
            path = path.lstrip("-")
            local = env_files.get(path)
            if local is None or not Path(local).exists():
                if optional:
                    continue
                raise UnitError(f"{self.path.name}: EnvironmentFile={path} is required and not provided")
            env.update(parse_env_file(Path(local)))
        return env

    def exec_lines(self, key: str = "ExecStart", instance: str | None = None, env: Mapping[str, str] | None = None,
                   env_files: Mapping[str, Path] | None = None, hostname: str | None = None) -> list[list[str]]:
        """Each ``key=`` command line as the argv systemd would execute."""
        spec = self.specifiers(instance, hostname)
        if env is None:
            env = self.environment(instance, env_files, hostname)
        commands = []
        for value in self.values("Service", key):
            line = self.resolve(value, spec)
            prefixes = re.match(r"[-@:+!]*", line).group(0)
            line = line[len(prefixes):]
            words = shlex.split(line)
            if ":" not in prefixes:
                words = _expand_variables(words, env, f"{self.path.name} {key}=")
            if "@" in prefixes:      # @: the second word is argv[0]; run the first
                words = [words[0]] + words[2:]
            commands.append(words)
        return commands


def _expand_variables(words: list[str], env: Mapping[str, str], where: str) -> list[str]:
    """systemd's exec-time expansion: a word that is exactly ``$NAME`` splits on whitespace;
    ``${NAME}`` anywhere substitutes as is; ``$$`` is a dollar sign. Unset is an error here (systemd
    would pass an empty string, which only shows up as a confusing failure later)."""
    out: list[str] = []
    for word in words:
        whole = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", word)
        if whole:
            name = whole.group(1)
            if name not in env:
                raise UnitError(f"{where} ${name} is not set by Environment= or EnvironmentFile=")
            out.extend(env[name].split())
            continue

        def sub(m: re.Match) -> str:
            if m.group(0) == "$$":
                return "$"
            name = m.group(1) or m.group(2)
            if name not in env:
                raise UnitError(f"{where} ${{{name}}} is not set by Environment= or EnvironmentFile=")
            return env[name]

        out.append(re.sub(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)", sub, word))
    return out


def parse_env_file(path: Path) -> dict[str, str]:
    """An EnvironmentFile= as systemd reads it: ``NAME=VALUE`` lines, ``#``/``;`` comments, a value
    wholly in single or double quotes unquoted, otherwise literal (inner quotes kept, trailing blanks
    dropped), backslash escaping the next character outside single quotes."""
    env: dict[str, str] = {}
    for lineno, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        key, eq, rest = line.partition("=")
        key = key.strip()
        if not eq or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise UnitError(f"{path.name}:{lineno}: {raw!r} is not NAME=VALUE")
        rest = rest.lstrip()
        if rest[:1] == "'" and rest.endswith("'") and len(rest) >= 2:
            value = rest[1:-1]
        elif rest[:1] == '"' and rest.endswith('"') and len(rest) >= 2:
            value = re.sub(r'\\(["\\`$])', r"\1", rest[1:-1])
        else:
            value = re.sub(r"\\(.)", r"\1", rest).rstrip()
        env[key] = value
    return env


def host_units() -> list[Path]:
    """The promptloop systemd units shipped in deploy/."""
    return sorted(DEPLOY.glob("promptloop*.service"))


def unit_instances(unit: SystemdUnit) -> list[str | None]:
    """The instances a template documents in its ``systemctl enable`` comment line(s); [None] otherwise."""
    if not unit.is_template:
        return [None]
    text = unit.path.read_text()
    stem = unit.path.name.split("@")[0]
    found = re.findall(rf"{re.escape(stem)}@([A-Za-z0-9_.:-]+)(?![A-Za-z0-9_.:@-])", text)
    return sorted(set(found) - {""})


def localize(word: str) -> str:
    """A path inside the installed tree (host or image) as the same file in this checkout."""
    for prefix in (HOST_PREFIX, IMAGE_PREFIX):
        if word == prefix or word.startswith(prefix + "/"):
            return str(ROOT) + word[len(prefix):]
    return word


def local_argv(argv: Iterable[str]) -> list[str]:
    return [localize(w) for w in argv]


def local_env(extra: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """This process's environment with the virtualenv first on PATH (where the image has promptloop
    and celery on PATH), plus ``extra`` (None removes a name)."""
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    for key, value in (extra or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = str(value)
    return env


@dataclass(frozen=True)
class Ran:
    returncode: int
    output: str


@cache
def _run_cached(argv: tuple[str, ...], env_items: tuple[tuple[str, str], ...], timeout: float) -> Ran:
    try:
        proc = subprocess.run(list(argv), cwd=ROOT, env=dict(env_items), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=timeout, text=True)
    except FileNotFoundError as exc:
        return Ran(127, str(exc))
    return Ran(proc.returncode, proc.stdout)


def run_help(argv: Iterable[str], env: Mapping[str, str | None] | None = None, timeout: float = 120) -> Ran:
    """Run a deployed command line here with ``--help`` appended (memoized: files repeat commands).

    Click and Celery parse the options before printing help, so a misspelt subcommand or option still
    fails; the values are not checked (a worker is not started)."""
    argv = local_argv(argv) + ["--help"]
    full_env = local_env(env)
    return _run_cached(tuple(argv), tuple(sorted(full_env.items())), timeout)


def run_shell_help(command: str, env: Mapping[str, str | None] | None = None, timeout: float = 120) -> Ran:
    """A shell command line (a CMD-SHELL healthcheck, an ``sh -c`` probe) with `` --help`` appended."""
    return run_help(["/bin/sh", "-c", localize_shell(command) + " --help"], env, timeout)


def localize_shell(command: str) -> str:
    return " ".join(localize(w) for w in command.split(" "))


def is_usage(ran: Ran) -> bool:
    """Exit 0 with a usage text: the program exists and accepted every option it was given."""
    return ran.returncode == 0 and "usage" in ran.output.lower()


# --- compose -------------------------------------------------------------------------------------

#: What every secret in the compose file is set to by the tests (each must be required, not defaulted).
COMPOSE_TEST_SECRETS = {
    "POSTGRES_PASSWORD": "pg-test-password-0123456789",
    "FLOWER_BASIC_AUTH": "ops:Zq8flowerTest77k",
    "REDIS_ADMIN_PASSWORD": "admin-test-password-0123456789",
    "REDIS_WORKER_PASSWORD": "worker-test-password-0123456789",
    "REDIS_PRODUCER_PASSWORD": "producer-test-password-012345678",
}

_COMPOSE_VAR = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


class InterpolationError(ValueError):
    pass


def interpolate(value, env: Mapping[str, str]):
    """Compose's interpolation over a loaded file (strings anywhere in it)."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match) -> str:
        if m.group(1):
            return "$"
        name = m.group(2) or m.group(5)
        op, arg = m.group(3), m.group(4) or ""
        current = env.get(name)
        unset = current is None or (op is not None and op.startswith(":") and current == "")
        if op in (":-", "-"):
            return arg if unset else current
        if op in (":?", "?"):
            if unset:
                raise InterpolationError(f"{name}: {arg}")
            return current
        return current or ""

    return _COMPOSE_VAR.sub(sub, value)


def load_compose(path: Path = COMPOSE_FILE) -> dict:
    """The compose file as YAML (anchors and ``<<`` merges resolved by the YAML loader)."""
    return yaml.safe_load(path.read_text())


def compose_services(env: Mapping[str, str] | None = None, path: Path = COMPOSE_FILE) -> dict[str, dict]:
    """The services as compose resolves them from ``env`` (plus the test secrets): interpolated, and an
    ``environment`` entry without a value passed through from ``env`` (left None when unset there)."""
    env = {**COMPOSE_TEST_SECRETS, **(env or {})}
    services = interpolate(load_compose(path), env)["services"]
    for svc in services.values():
        environment = svc.get("environment")
        if isinstance(environment, dict):
            svc["environment"] = {k: (env.get(k) if v is None else v) for k, v in environment.items()}
    return services


def strings(value):
    """Every string in a loaded YAML document (comments are not part of it)."""
    if isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)
    elif isinstance(value, str):
        yield value


def dockerfile_entrypoint(path: Path = DEPLOY / "Dockerfile") -> list[str]:
    """The image's ENTRYPOINT (exec form), which a service's ``command`` is appended to."""
    import json

    for line in path.read_text().splitlines():
        if line.startswith("ENTRYPOINT"):
            return json.loads(line[len("ENTRYPOINT"):].strip())
    return []


def service_argv(service: dict, image_entrypoint: list[str]) -> list[str]:
    """What a container of ``service`` runs: an ``entrypoint`` replaces the image's and drops its CMD."""
    command = service.get("command") or []
    if isinstance(command, str):
        command = shlex.split(command)
    entrypoint = service.get("entrypoint")
    if entrypoint is None:
        entrypoint = image_entrypoint
    elif isinstance(entrypoint, str):
        entrypoint = shlex.split(entrypoint)
    return [*entrypoint, *command]


def service_environment(service: dict) -> dict[str, str | None]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] if "=" in item else (item, None) for item in env)
    return {k: (None if v is None else str(v)) for k, v in env.items()}


def is_promptloop_image(service: dict) -> bool:
    build = service.get("build") or {}
    dockerfile = build.get("dockerfile", "") if isinstance(build, dict) else ""
    return dockerfile == "deploy/Dockerfile" or str(service.get("image", "")).startswith("promptloop")


def docker_compose() -> str | None:
    return shutil.which("docker-compose")


# --- Kubernetes ----------------------------------------------------------------------------------


def kustomization(directory: Path = K8S) -> dict:
    return yaml.safe_load((directory / "kustomization.yaml").read_text())


def manifests(directory: Path = K8S) -> list[dict]:
    """Every document of every resource file the kustomization lists, in order."""
    docs = []
    for name in kustomization(directory).get("resources", []):
        for doc in yaml.safe_load_all((directory / name).read_text()):
            if doc is not None:
                doc = dict(doc)
                doc.setdefault("__file__", name)
                docs.append(doc)
    return docs


def without_file(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if k != "__file__"}


def generated_secrets(directory: Path = K8S, env_suffix: str = ".example") -> list[dict]:
    """The Secrets the kustomization's secretGenerator makes, from the shipped example env files."""
    out = []
    for gen in kustomization(directory).get("secretGenerator", []):
        data: dict[str, str] = {}
        for env_name in gen.get("envs", []):
            data.update(parse_env_file(directory / (env_name + env_suffix)))
        for literal in gen.get("literals", []):
            key, _, value = literal.partition("=")
            data[key] = value
        out.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": gen["name"]},
                    "type": gen.get("type", "Opaque"), "stringData": data})
    return out


def pod_spec(doc: dict) -> dict | None:
    kind = doc.get("kind")
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        return doc["spec"]["template"]["spec"]
    if kind == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    if kind == "Pod":
        return doc["spec"]
    return None


def containers(doc: dict) -> list[dict]:
    spec = pod_spec(doc)
    if spec is None:
        return []
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def container_argv(container: dict) -> list[str]:
    return [*container.get("command", []), *container.get("args", [])]


def worker_queues(argv: list[str]) -> list[str] | None:
    """The queues of a ``promptloop worker`` command line, or None if it is not one."""
    if "worker" not in argv or not argv or Path(argv[0]).name != "promptloop":
        return None
    for flag in ("-Q", "--queues"):
        if flag in argv:
            return argv[argv.index(flag) + 1].split(",")
    return celery_queues()   # `promptloop worker` without -Q consumes them all


def celery_queues() -> list[str]:
    from workers.queues import Queue

    return [q.value for q in Queue]
