"""Dead workers: three worker processes share one queue in PostgreSQL; one is killed with SIGKILL in
the middle of its runs and never restarted. The others see its heartbeat stop, one of them claims
it and recovers its runs, and every run finishes, with no tool call executed twice (checked
against the side-effect files the tools wrote and against the session store's ledger)."""

from __future__ import annotations

import asyncio
import collections
import time
from pathlib import Path

import pytest
from workers.harness import Workers, fake_api_process, fresh_database, query

from tether.fleet.spec import RunSpec
from tether.store.sql import open_store

RECORDING_WORKER = str(Path(__file__).parent / "workers" / "recording_worker.py")
RUNS = 9
TURNS = 6
WORKERS = ("w1", "w2", "w3")


@pytest.fixture(scope="module")
def url():
    with fresh_database() as url:
        yield url


@pytest.fixture(scope="module")
def coding_api():
    with fake_api_process("--behaviour", "coding-agent", "--turns", str(TURNS), "--first-token-delay", "0.2") as base:
        yield base


def effects_of(directory: Path) -> collections.Counter:
    ran: collections.Counter = collections.Counter()
    for path in directory.glob("*.effects"):
        ran.update(tuple(line.split()) for line in path.read_text().splitlines() if line.strip())
    return ran


def pending_by_worker(url: str) -> dict[str, int]:
    rows = query(url, "SELECT executor_id, count(*) FROM dbos.workflow_status WHERE status = 'PENDING' "
                      "GROUP BY executor_id")
    return dict(rows)


async def wait_for_victim(url: str, effects: Path, timeout: float = 30) -> str:
    """A worker in the middle of its runs: some of them running, and tool calls already made."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = pending_by_worker(url)
        for worker in WORKERS:
            made = effects / f"{worker}.effects"
            if running.get(worker, 0) >= 2 and made.exists() and len(made.read_text().splitlines()) >= 2:
                return worker
        await asyncio.sleep(0.05)
    raise AssertionError(f"no worker got busy: {pending_by_worker(url)}")


async def check_session(url: str, session_id: str, ran: collections.Counter) -> None:
    store = await open_store(url)
    try:
        messages = await store.messages(session_id)
        ledger = await store.ledger(session_id)
        info = await store.get(session_id)
    finally:
        await store.close()
    assert info is not None and info.status == "completed"
    assert [m.seq for m in messages] == list(range(len(messages))), "no message lost or duplicated"
    assert [m.role for m in messages] == ["user", "assistant"] * (len(messages) // 2)
    assert sum(m.role == "assistant" for m in messages) == TURNS, "each of the agent's turns happened once"
    for calls, results in zip(messages[1::2], messages[2::2], strict=False):
        called = [b["id"] for b in calls.content if b["type"] == "tool_use"]
        answered = [b["tool_use_id"] for b in results.content if b["type"] == "tool_result"]
        assert called == answered, "every call answered exactly once, in order"
    mine = {call for (session, call) in ran if session == session_id}
    assert mine, "the run's tools ran"
    assert mine <= set(ledger), "every side effect was claimed in the ledger first"
    finished = {call for call, entry in ledger.items() if entry.status == "finished"}
    assert finished <= mine, "every finished call in the ledger ran (once: see the counter)"


@pytest.mark.timeout(120)
async def test_runs_of_a_killed_worker_finish_on_the_others_and_no_tool_runs_twice(url, coding_api, tmp_path):
    from tether.fleet.distributed import DistributedFleet

    effects = tmp_path / "effects"
    effects.mkdir()
    workers = Workers(url, tmp_path)
    async with await DistributedFleet.open(url) as fleet:
        for worker in WORKERS:
            workers.start(worker, [RECORDING_WORKER, url, worker, coding_api, str(effects / f"{worker}.effects")])
        try:
            ready = time.monotonic()
            await asyncio.to_thread(workers.wait_ready)
            ready = time.monotonic() - ready
            ids = [await fleet.enqueue(RunSpec(f"build project {i}", id=str(i))) for i in range(RUNS)]
            started = time.monotonic()
            victim = await wait_for_victim(url, effects)
            victims_runs = {r.id for r in [await fleet.status(i) for i in ids] if r.executor_id == victim
                            and r.state == "running"}
            workers.kill(victim)
            killed_at = time.monotonic() - started
            outcomes = await asyncio.wait_for(asyncio.gather(*(fleet.result(i) for i in ids)), 90)
            finished_at = time.monotonic() - started
            statuses = {i: await fleet.status(i) for i in ids}
        finally:
            codes = workers.stop_all()
    survivors = [w for w in WORKERS if w != victim]
    logs = "\n".join(f"--- {w}\n{workers.log(w)}" for w in WORKERS)

    assert [o.outcome for o in outcomes] == ["completed"] * RUNS, logs
    assert [o.spec_id for o in outcomes] == [str(i) for i in range(RUNS)]
    assert all(o.turns == TURNS for o in outcomes), "a recovered run reports the whole run"
    assert victims_runs, "the victim was running some runs when it was killed"
    for run_id in victims_runs:
        assert statuses[run_id].executor_id in survivors and statuses[run_id].attempts >= 2
    assert all(codes[w] == 0 for w in survivors), codes

    (claimed_by,), = query(url, "SELECT claimed_by FROM tether_fleet_workers WHERE executor_id = %s", victim)
    assert claimed_by in survivors, "one survivor claimed the dead worker"
    recoveries = [w for w in survivors if f"of dead worker {victim}" in workers.log(w)]
    assert recoveries == [claimed_by], "only the claimer recovered its runs"

    ran = effects_of(effects)
    assert ran and all(count == 1 for count in ran.values()), f"a tool call ran twice: {ran.most_common(3)}"
    victims_sessions = {session for (session, _) in effects_of_worker(effects, victim)}
    assert victims_sessions & {o.session_id for o in outcomes}, "the victim had made tool calls for its runs"
    for outcome in outcomes:
        await check_session(url, outcome.session_id, ran)
    print(f"workers ready in {ready:.1f}s; {victim} killed at {killed_at:.1f}s with {len(victims_runs)} run(s), "
          f"claimed by {claimed_by}; all {RUNS} runs done at {finished_at:.1f}s")


def effects_of_worker(directory: Path, worker: str) -> set[tuple[str, str]]:
    path = directory / f"{worker}.effects"
    return {tuple(line.split()) for line in path.read_text().splitlines() if line.strip()}
