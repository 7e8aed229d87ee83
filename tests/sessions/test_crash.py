"""Crash safety: a run killed with SIGKILL at random points resumes to completion, every time, with no
message lost or duplicated and no tool call executed twice."""

from __future__ import annotations

import asyncio
import collections
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tether.store.sql import open_store

CHILD = Path(__file__).with_name("crash_child.py")
KILLS = 50
TURNS = 6


def spawn(store: Path, session: str, base_url: str, effects: Path, seed: int) -> subprocess.Popen:
    """The child, its pipes unbuffered: ``readline()`` then reads up to the newline and no further.
    A buffered one reads ahead, and ``communicate()`` reads the pipe itself, so a line the child
    wrote right after ``ready`` (a resumed run with nothing left to do ends at once) was lost."""
    return subprocess.Popen([sys.executable, str(CHILD), str(store), session, base_url, str(effects), str(seed)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)


def drive(store: Path, session: str, base_url: str, effects: Path, kills: int, rng: random.Random) -> int:
    """Start and kill the child ``kills`` times at random moments, then let it finish. Returns kills done."""
    done = 0
    for attempt in range(kills + 20):
        child = spawn(store, session, base_url, effects, attempt)
        assert child.stdout.readline().strip() == b"ready", child.stderr.read().decode()
        if done < kills:
            time.sleep(rng.uniform(0.0, 1.0))
            if child.poll() is None:
                child.kill()
                child.wait()
                done += 1
                continue
        out, err = (output.decode() for output in child.communicate(timeout=120))
        if child.returncode == 0 and "end completed" in out:
            return done
        raise AssertionError(f"the resumed run did not complete (exit {child.returncode}): {out}\n{err}")
    raise AssertionError("the run never completed")


async def check_session(store_path: Path, session: str, effects: Path) -> None:
    store = await open_store(str(store_path))
    messages = await store.messages(session)
    ledger = await store.ledger(session)
    info = await store.get(session)
    await store.close()
    assert [m.seq for m in messages] == list(range(len(messages))), "no message lost or duplicated"
    assert [m.role for m in messages] == ["user", "assistant"] * (len(messages) // 2)
    assert info.status == "completed"
    assistant_turns = [m for m in messages if m.role == "assistant"]
    assert len(assistant_turns) == TURNS, "the simulated agent's turns all happened once"
    for call_message, result_message in zip(messages[1::2], messages[2::2], strict=False):
        calls = [b["id"] for b in call_message.content if b["type"] == "tool_use"]
        answered = [b["tool_use_id"] for b in result_message.content if b["type"] == "tool_result"]
        assert calls == answered, "every call answered exactly once, in order"
    ran = collections.Counter(effects.read_text().split()) if effects.exists() else collections.Counter()
    assert all(count == 1 for count in ran.values()), f"a tool call ran twice: {ran.most_common(3)}"
    assert set(ran) <= set(ledger), "every side effect was claimed in the ledger first"


@pytest.mark.timeout(600)
def test_runs_killed_at_random_points_resume_to_completion(tmp_path, crash_fake_api):
    rng = random.Random(20261121)
    store = tmp_path / "sessions.db"
    total = 0
    session_number = 0
    while total < KILLS:
        session = f"ses_crash_{session_number}"
        effects = tmp_path / f"{session}.effects"
        total += drive(store, session, crash_fake_api, effects, kills=min(10, KILLS - total), rng=rng)
        asyncio.run(check_session(store, session, effects))
        session_number += 1
    assert total >= KILLS


async def mark_running(store_path: Path, session: str) -> None:
    store = await open_store(str(store_path))
    await store.update(session, status="running")
    await store.close()


@pytest.mark.timeout(300)
def test_a_run_killed_after_its_last_message_ends_at_once_on_resume(tmp_path, crash_fake_api):
    """Killed after its last message was stored, before it was marked ended: the resumed run has
    nothing left to do, and its ``end`` line follows ``ready`` at once; neither may be lost."""
    store, session, effects = tmp_path / "sessions.db", "ses_ended", tmp_path / "ses_ended.effects"
    assert drive(store, session, crash_fake_api, effects, kills=0, rng=random.Random(0)) == 0
    asyncio.run(mark_running(store, session))
    child = spawn(store, session, crash_fake_api, effects, 0)
    child.wait(timeout=120)  # both lines are in the pipe before the first is read
    assert child.stdout.readline().strip() == b"ready"
    out, err = child.communicate()
    assert child.returncode == 0 and b"end completed" in out, err.decode()
    asyncio.run(check_session(store, session, effects))
