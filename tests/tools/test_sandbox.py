"""Workspace path resolution, the scrubbed environment, and resource limits."""

from __future__ import annotations

import os
import resource
import subprocess
import sys

import pytest

from tether.tools.sandbox import Limits, PathOutsideWorkspace, Workspace, looks_secret


@pytest.fixture
def ws(tmp_path):
    (tmp_path / "root").mkdir()
    return Workspace(tmp_path / "root")


def test_relative_paths_resolve_against_the_root(ws):
    assert ws.resolve("a/b.txt") == ws.root / "a" / "b.txt"
    assert ws.resolve(".") == ws.root
    assert ws.resolve(str(ws.root / "x")) == ws.root / "x"
    assert ws.resolve("a/../b") == ws.root / "b"


@pytest.mark.parametrize("path", ["..", "../outside.txt", "a/../../outside", "/etc/passwd", "/"])
def test_paths_outside_are_refused_naming_the_root(ws, path):
    with pytest.raises(PathOutsideWorkspace) as caught:
        ws.resolve(path)
    assert str(ws.root) in str(caught.value)
    assert "outside the workspace" in str(caught.value)


def test_symlinks_are_resolved_before_the_check(ws, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("s")
    (ws.root / "link").symlink_to(secret)
    (ws.root / "dirlink").symlink_to(tmp_path)
    (ws.root / "inner").symlink_to(ws.root / "real.txt")
    for path in ("link", "dirlink/secret.txt", "dirlink"):
        with pytest.raises(PathOutsideWorkspace, match="symbolic link"):
            ws.resolve(path)
    assert ws.resolve("inner") == ws.root / "real.txt"


def test_extra_roots_are_allowed(tmp_path):
    (tmp_path / "root").mkdir()
    (tmp_path / "data").mkdir()
    ws = Workspace(tmp_path / "root", extra_roots=(tmp_path / "data",))
    assert ws.resolve(str(tmp_path / "data" / "f")) == tmp_path / "data" / "f"
    with pytest.raises(PathOutsideWorkspace, match="data"):
        ws.resolve(str(tmp_path / "other"))


def test_nul_byte_refused(ws):
    with pytest.raises(PathOutsideWorkspace, match="NUL"):
        ws.resolve("a\x00b")


@pytest.mark.parametrize("name", ["ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "OPENAI_API_KEY", "GITHUB_TOKEN",
                                  "AWS_ACCESS_KEY_ID", "AWS_REGION", "DB_PASSWORD", "MY_SECRET", "SLACK_BOT_TOKEN",
                                  "DATABASE_URL", "STRIPE_KEY", "npm_config__auth"])
def test_secret_names(name):
    assert looks_secret(name)


@pytest.mark.parametrize("name", ["PATH", "HOME", "LANG", "TERM", "TZ", "LC_ALL", "PAGER", "MPLBACKEND"])
def test_ordinary_names(name):
    assert not looks_secret(name)


def test_environment_is_an_allow_list_without_secrets(ws):
    source = {"PATH": "/usr/bin", "LANG": "en_US.UTF-8", "TERM": "xterm", "ANTHROPIC_API_KEY": "sk-ant-x",
              "SOME_RANDOM": "1", "HOME": "/root", "TZ": "UTC"}
    env = ws.environment(source=source, extra={"PAGER": "cat", "GITHUB_TOKEN": "ghp_x"})
    assert env == {"PATH": "/usr/bin", "LANG": "en_US.UTF-8", "TERM": "xterm", "TZ": "UTC",
                   "HOME": str(ws.root), "PAGER": "cat"}
    assert ws.environment(source={})["PATH"] == os.defpath


def test_limits_apply_in_the_child():
    limits = Limits(cpu_seconds=7, memory_mb=300, file_size_mb=3, max_processes=5, open_files=64)
    script = ("import resource as r; print(r.getrlimit(r.RLIMIT_CPU)[0], r.getrlimit(r.RLIMIT_AS)[0], "
              "r.getrlimit(r.RLIMIT_FSIZE)[0], r.getrlimit(r.RLIMIT_NOFILE)[0], r.getrlimit(r.RLIMIT_CORE)[0])")
    out = subprocess.run([sys.executable, "-I", "-c", script], preexec_fn=limits.preexec(),
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == ["7", str(300 * 2**20), str(3 * 2**20), "64", "0"]


def test_limits_never_exceed_the_hard_limit():
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    settings = dict(Limits(open_files=10**9)._settings())
    assert settings[resource.RLIMIT_NOFILE][1] <= hard or hard == resource.RLIM_INFINITY


def test_a_tool_cannot_read_the_parent_environment_through_proc(tmp_path):
    """Run as an unprivileged user: root reads any /proc entry, so the check needs a non-root child."""
    import os
    import subprocess
    import sys

    script = (
        "import os, subprocess, sys\n"
        "from tether.tools.sandbox import hide_own_environment\n"
        "assert hide_own_environment()\n"
        "child = subprocess.run(['cat', f'/proc/{os.getpid()}/environ'], capture_output=True)\n"
        "print('LEAK' if b'sk-ant-hidden' in child.stdout else 'HIDDEN')\n"
    )
    env = {**os.environ, "ANTHROPIC_API_KEY": "sk-ant-hidden"}
    if os.geteuid() == 0:
        import shutil

        if shutil.which("setpriv") is None:
            import pytest

            pytest.skip("running as root without setpriv: cannot test as an unprivileged user")
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", script]
    else:
        command = [sys.executable, "-c", script]
    out = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert out.stdout.strip() == "HIDDEN", out.stderr
