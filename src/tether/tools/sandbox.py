"""The workspace sandbox: which paths file tools may touch, and what a subprocess inherits.

``Workspace.resolve`` turns a path the model wrote into a real path inside the workspace, or raises
``PathOutsideWorkspace``: relative paths resolve against the root, symlinks are followed *before* the
check, so neither ``..`` nor a link pointing out can escape. ``Workspace.environment`` builds the
environment of a subprocess from a short allow-list, and drops anything that looks like a secret
even when asked for by name. ``Limits`` are the resource limits a subprocess starts with.

This is a guard for honest mistakes and a boundary for file tools, not a container: a shell can
still read whatever the user running tether can. Run tether inside a container or VM for isolation.
"""

from __future__ import annotations

import ctypes
import functools
import os
import re
import resource
import signal
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from tether.tools.base import ToolError

# What a subprocess may inherit from tether's own environment; everything else is dropped.
ALLOWED_ENV = (
    "PATH", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "TERM", "TZ", "TMPDIR", "USER", "LOGNAME", "SHELL",
)

_SECRET = re.compile(
    r"^(ANTHROPIC_|AWS_|AZURE_|GOOGLE_|GCP_|GH_|GITHUB_|OPENAI_|HF_|NPM_|PYPI_|DOCKER_)"
    r"|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|TOKEN|SECRET|PASSWORD|PASSWD|PASSPHRASE|CREDENTIAL|AUTH|COOKIE"
    r"|SESSION|_KEY$|DSN$|DATABASE_URL",
    re.IGNORECASE,
)


def looks_secret(name: str) -> bool:
    """True for environment variable names that may hold a credential."""
    return bool(_SECRET.search(name))


class PathOutsideWorkspace(ToolError):
    """A path the model gave resolves outside every allowed root."""


@dataclass(frozen=True)
class Workspace:
    root: Path
    extra_roots: tuple[Path, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root).resolve())
        object.__setattr__(self, "extra_roots", tuple(Path(r).resolve() for r in self.extra_roots))

    @property
    def roots(self) -> tuple[Path, ...]:
        return (self.root, *self.extra_roots)

    def resolve(self, path: str | os.PathLike[str]) -> Path:
        """The real path of ``path`` (relative to the root), or ``PathOutsideWorkspace``."""
        if isinstance(path, str) and "\x00" in path:
            raise PathOutsideWorkspace(f"the path {path!r} contains a NUL byte")
        candidate = Path(path)
        if not candidate.is_absolute():
            candidate = self.root / candidate
        real = candidate.resolve()
        if any(real == root or real.is_relative_to(root) for root in self.roots):
            return real
        allowed = " or ".join(str(r) for r in self.roots)
        how = " (through a symbolic link)" if _through_link(candidate, real) else ""
        raise PathOutsideWorkspace(
            f"the path {os.fspath(path)!r} resolves to {real}{how}, outside the workspace {self.root}; "
            f"only paths inside {allowed} are allowed"
        )

    def environment(self, *, home: Path | None = None, extra: Mapping[str, str] | None = None,
                    source: Mapping[str, str] | None = None) -> dict[str, str]:
        """A scrubbed environment: the allow-list from ``source`` (tether's own environment), then ``extra``.

        Names that look like secrets are dropped from both. ``HOME`` is the workspace root unless given.
        """
        source = os.environ if source is None else source
        env = {name: source[name] for name in ALLOWED_ENV if name in source}
        env.setdefault("PATH", os.defpath)
        env.setdefault("LANG", "C.UTF-8")
        env["HOME"] = str(home or self.root)
        env.update(extra or {})
        return {k: v for k, v in env.items() if not looks_secret(k)}


def _through_link(candidate: Path, real: Path) -> bool:
    return os.path.normpath(candidate) != str(real)


@dataclass(frozen=True)
class Limits:
    """Resource limits a subprocess (and everything it starts) runs under. ``None`` leaves one unset.

    ``max_processes`` becomes ``RLIMIT_NPROC``, which the kernel counts per user and does not enforce
    for root; the Python tool also watches its process group, so the limit holds there too.
    """

    cpu_seconds: int | None = 30
    memory_mb: int | None = 1024
    file_size_mb: int | None = 256
    max_processes: int | None = 64
    open_files: int | None = 256

    def preexec(self) -> Callable[[], None]:
        """A ``preexec_fn`` that applies the limits in the child, after fork and before exec."""
        settings = list(self._settings())

        def apply() -> None:
            for which, value in settings:
                resource.setrlimit(which, value)

        return apply

    def _settings(self) -> Iterable[tuple[int, tuple[int, int]]]:
        yield resource.RLIMIT_CORE, (0, 0)
        if self.cpu_seconds is not None:
            yield resource.RLIMIT_CPU, _capped(resource.RLIMIT_CPU, self.cpu_seconds, self.cpu_seconds + 1)
        if self.memory_mb is not None:
            size = self.memory_mb * 2**20
            yield resource.RLIMIT_AS, _capped(resource.RLIMIT_AS, size, size)
        if self.file_size_mb is not None:
            size = self.file_size_mb * 2**20
            yield resource.RLIMIT_FSIZE, _capped(resource.RLIMIT_FSIZE, size, size)
        if self.max_processes is not None:
            count = _user_tasks() + self.max_processes
            yield resource.RLIMIT_NPROC, _capped(resource.RLIMIT_NPROC, count, count)
        if self.open_files is not None:
            yield resource.RLIMIT_NOFILE, _capped(resource.RLIMIT_NOFILE, self.open_files, self.open_files)


def _capped(which: int, soft: int, hard: int) -> tuple[int, int]:
    """Never ask for more than the current hard limit: an unprivileged process may not raise it."""
    current = resource.getrlimit(which)[1]
    if current == resource.RLIM_INFINITY:
        return soft, hard
    return min(soft, current), min(hard, current)


def _user_tasks() -> int:
    """How many tasks (processes and threads) this user runs: RLIMIT_NPROC counts them all."""
    uid, count = os.getuid(), 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += len(os.listdir(f"/proc/{entry.name}/task"))
            except OSError:
                continue
    return count


def kill_process_group(pid: int) -> None:
    """SIGKILL the process group led by ``pid`` (started with ``start_new_session``); quiet if gone."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def session_size(sid: int) -> int:
    """How many live processes belong to session ``sid``, read from /proc."""
    count = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 3 and int(fields[3]) == sid and fields[0] != b"Z":
            count += 1
    return count


_PR_SET_DUMPABLE = 4


@functools.cache
def hide_own_environment() -> bool:
    """Make this process non-dumpable, so a tool running as the same user cannot read its
    environment (``/proc/<pid>/environ``, where the API key lives) or attach to it. Children are not
    affected (``execve`` resets the flag). Root can still read it. True if the flag was set; done
    once per process (each run's tools ask for it)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) == 0
    except (OSError, AttributeError):  # not Linux
        return False
