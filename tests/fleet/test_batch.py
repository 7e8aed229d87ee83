"""``tether batch`` end to end: a real process against the fake API on loopback, killed with SIGKILL
mid-way and run again; plus the file checks and the resume paths, in-process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tether import AnthropicClient
from tether.errors import UserError
from tether.fleet.batch import BatchFileError, ResultsFile, read_batch, run_batch, session_id_for
from tether.fleet.local import Fleet
from tether.sessions import Sessions
from tether.store.base import SessionQuery
from tether.store.sql import open_store
from tether.testing import CodingAgent, FakeAPI

TETHER = [sys.executable, "-m", "tether.cli.main"]
TURNS = 6
KEY = "batch-key"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAPI]:
    with FakeAPI(behaviour=CodingAgent(turns=TURNS)) as server:
        yield server


def env(fake: FakeAPI, store: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "TETHER_"))}
    return {**base, "ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": fake.base_url, "TETHER_STORE_URL": str(store)}


def write_tasks(path: Path, count: int) -> list[str]:
    lines = [{"id": f"t{i:02d}", "task": f"task number {i}", "queue": "a" if i % 2 else "b"} for i in range(count)]
    lines[3].pop("id")  # this one gets a hash of its content as its id
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return [line.get("id", "") for line in lines]


def results_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def batch_command(tasks: Path, out: Path, workspaces: Path, concurrency: int = 4) -> list[str]:
    return [*TETHER, "batch", str(tasks), "--out", str(out), "--concurrency", str(concurrency),
            "--tools", "bash,editor", "--workspaces", str(workspaces), "--status-every", "1"]


async def check_sessions(store_path: Path, tasks: Path, ids: list[str]) -> list[str]:
    """One session per line, each run once: the task asked once, every turn once, every tool call once."""
    store = await open_store(str(store_path))
    interrupted: list[str] = []
    try:
        sessions = await store.list(SessionQuery(tag="batch", limit=1000))
        key = str(tasks.resolve())
        assert sorted(s.id for s in sessions) == sorted(session_id_for(key, i) for i in ids)
        for info in sessions:
            assert info.status == "completed", info
            messages = await store.messages(info.id)
            ledger = await store.ledger(info.id)
            assert [m.seq for m in messages] == list(range(len(messages)))
            assert [m.role for m in messages] == ["user", "assistant"] * TURNS, "no turn lost or repeated"
            task_messages = [m for m in messages if m.role == "user" and m.content[0]["type"] == "text"]
            assert len(task_messages) == 1, "the task was sent once: the session never started over"
            for calls, answers in zip(messages[1::2], messages[2::2], strict=False):
                called = [b["id"] for b in calls.content if b["type"] == "tool_use"]
                results = [b for b in answers.content if b["type"] == "tool_result"]
                assert called == [b["tool_use_id"] for b in results], "every tool call answered exactly once"
                for result in results:
                    entry = ledger[result["tool_use_id"]]  # claimed before it ran
                    if entry.status == "started":  # cut by the kill: answered as interrupted, not run again
                        assert result["is_error"] and "interrupted" in str(result["content"]), result
                        interrupted.append(entry.tool_use_id)
                    else:
                        assert entry.result == result, "the recorded result is the one the model saw"
            assert len(ledger) == sum(len([b for b in m.content if b["type"] == "tool_use"]) for m in messages)
    finally:
        await store.close()
    return interrupted


def test_a_batch_killed_mid_way_resumes_and_finishes_every_line_once(fake, tmp_path):
    fake.set_latency(0.05, 0.0002, key=KEY)
    tasks, out, store, workspaces = tmp_path / "tasks.jsonl", tmp_path / "out.jsonl", tmp_path / "s.db", tmp_path / "ws"
    ids = write_tasks(tasks, 16)
    command = batch_command(tasks, out, workspaces)
    kills = 0
    for target in (3, 8):  # kill it twice, after a few results each time
        child = subprocess.Popen(command, env=env(fake, store), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while len(results_of(out)) < target and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert child.poll() is None, child.communicate()
        child.send_signal(signal.SIGKILL)
        child.communicate()
        kills += 1
    done = subprocess.run(command, env=env(fake, store), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr + done.stdout
    assert kills == 2
    records = results_of(out)
    counted = Counter(r["id"] for r in records)
    assert len(counted) == 16 and set(counted.values()) == {1}, "every line finished exactly once"
    assert {r["outcome"] for r in records} == {"completed"}
    assert all(r["turns"] == TURNS and r["session_id"].startswith("bat_") for r in records)
    assert sum(1 for i in ids if i) == 15 and len([i for i in counted if len(i) == 16]) == 1, "one hashed id"
    summary = done.stdout.strip().splitlines()[-1]
    assert " resumed)" in summary and int(summary.split(" resumed)")[0].rsplit(" ", 1)[1]) >= 1, summary
    asyncio.run(check_sessions(store, tasks, list(counted)))

    again = subprocess.run(command, env=env(fake, store), capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "16 already done" in again.stdout, again.stdout
    assert len(results_of(out)) == 16, "a finished batch appends nothing"


def test_plain_progress_lines_when_stdout_is_not_a_terminal(fake, tmp_path):
    tasks, out, store = tmp_path / "tasks.jsonl", tmp_path / "out.jsonl", tmp_path / "s.db"
    tasks.write_text('{"id": "one", "task": "first"}\n{"id": "two", "task": "second", "tools": []}\n')
    done = subprocess.run([*TETHER, "batch", str(tasks), "--out", str(out)], env=env(fake, store),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("[") and "id=one completed" in line for line in lines), done.stdout
    assert "2/2 finished" in lines[-1] and "results in" in lines[-1]
    assert [r["id"] for r in sorted(results_of(out), key=lambda r: r["line"])] == ["one", "two"]
    assert all(set(r) >= {"id", "line", "outcome", "session_id", "dollars", "text"} for r in results_of(out))


def test_a_bad_file_is_refused_whole_naming_each_bad_line(fake, tmp_path):
    tasks, out, store = tmp_path / "tasks.jsonl", tmp_path / "out.jsonl", tmp_path / "s.db"
    tasks.write_text('{"task": "fine"}\n\nnot json\n{"task": "x", "colour": "red"}\n{"id": "a", "task": "y"}\n'
                     '{"id": "a", "task": "z"}\n{"task": "t", "tools": ["hammer"]}\n[1, 2]\n{"model": "m"}\n')
    done = subprocess.run([*TETHER, "batch", str(tasks), "--out", str(out)], env=env(fake, store),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    for expected in ("line 3: not JSON", "line 4: unknown field(s) ['colour']", "line 6: id 'a' is already used on line 5",
                     "line 7: unknown tool set(s) ['hammer']", "line 8: expected a JSON object",
                     "line 9: give a task"):
        assert expected in done.stderr, done.stderr
    assert "nothing was run" in done.stderr
    assert not out.exists() or out.read_text() == ""
    assert not store.exists()


async def test_a_result_lost_in_a_crash_is_recovered_from_the_store_without_running_again(fake, tmp_path):
    tasks, out = tmp_path / "tasks.jsonl", tmp_path / "out.jsonl"
    tasks.write_text("".join(json.dumps({"id": f"r{i}", "task": f"recover {i}"}) + "\n" for i in range(3)))
    store = await open_store(str(tmp_path / "s.db"))
    client = AnthropicClient(api_key="recover-key", base_url=fake.base_url, max_retries=0)
    try:
        first = await _run(tasks, out, client, store)
        assert (first.done, first.skipped) == (3, 0)
        records = out.read_bytes().splitlines(keepends=True)
        out.write_bytes(records[0] + records[1][:25])  # one result lost, one cut short mid-line
        calls = len(fake.requests_for("recover-key"))
        second = await _run(tasks, out, client, store)
        assert (second.skipped, second.recovered, second.done) == (1, 2, 2)
        assert len(fake.requests_for("recover-key")) == calls, "nothing ran again"
        again = results_of(out)
        assert sorted(r["id"] for r in again) == ["r0", "r1", "r2"]
        assert again[1]["text"] == again[1]["text"] and again[2]["turns"] == 1 and again[2]["text"]
    finally:
        await client.aclose()
        await store.close()


async def _run(tasks: Path, out: Path, client, store):
    results = ResultsFile(out)
    results.open()
    try:
        async with Fleet(client, Sessions(store), concurrency=2) as fleet:
            return await run_batch(read_batch(tasks), results, fleet)
    finally:
        results.close()


def test_two_batches_cannot_write_the_same_results(tmp_path):
    first = ResultsFile(tmp_path / "out.jsonl")
    first.open()
    try:
        with pytest.raises(UserError, match="in use by another"):
            ResultsFile(tmp_path / "out.jsonl").open()
    finally:
        first.close()


def test_ids_and_session_ids_are_stable(tmp_path):
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text('{"task": "same"}\n{"task": "same"}\n{"id": 7, "task": "numbered"}\n')
    one, two = read_batch(tasks), read_batch(tasks)
    assert [line.id for line in one] == [line.id for line in two]
    assert one[1].id == one[0].id + "-2" and one[2].id == "7"
    assert [line.spec.session_id for line in one] == [line.spec.session_id for line in two]
    assert one[0].spec.session_id == session_id_for(str(tasks.resolve()), one[0].id)
    assert read_batch(tasks, key="other")[0].spec.session_id != one[0].spec.session_id
    with pytest.raises(BatchFileError):
        tasks.write_text('{"task": 1, "bogus": true}\n')
        read_batch(tasks)
