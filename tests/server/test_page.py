"""The web page, driven in headless Chromium against the real service and tether's fake model.

``tether serve`` runs in its own process on a loopback port, its model a ``FakeAPI`` scripted to
think, write, call ``bash`` (which the run sets to "ask"), save a screenshot with ``python`` and
answer. Playwright drives the page as a person would: token, task, approval, result and cost,
follow-up, sessions (fork, open, export, resume), usage; then an interrupt and a reload. The event
stream's parser and its reconnection are checked in the same browser. Screenshots go to the test's
temporary directory (the path is printed; ``pytest -s`` shows it).

Needs Chromium (Debian's ``chromium``, /usr/bin/chromium) and the ``playwright`` package; never its
browser download. Skipped, saying so, when either is missing.
"""

from __future__ import annotations

import inspect
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
import urllib.request
import zlib
from pathlib import Path

import pytest

from tether.testing import FakeAPI, Turn, text, thinking, tool_use

sync_api = pytest.importorskip("playwright.sync_api", reason="the page test needs playwright (pip install playwright)")
CHROMIUM = os.environ.get("TETHER_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip("the page test needs Chromium: apt-get install chromium (or set TETHER_CHROMIUM)",
                allow_module_level=True)

expect = sync_api.expect
expect.set_options(timeout=15_000)  # a loaded CI machine is slower than a desk
TETHER = [sys.executable, "-m", "tether.cli.main"]
API_KEY = "sk-page-test"
TASK = "Check the workspace and show me the app"
# Headless, and no connection attempts of Chromium's own (this machine reaches only loopback).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def fake_screenshot(width: int = 320, height: int = 200) -> bytes:
    """A PNG of a small window: a dark title bar, a text field and a blue button."""

    def color(x: int, y: int) -> tuple[int, int, int]:
        if y < 24:
            return (52, 58, 64)
        if 60 <= y < 84 and 24 <= x < 296:
            return (255, 255, 255) if 61 <= y < 83 and 25 <= x < 295 else (150, 150, 150)
        if 120 <= y < 150 and 200 <= x < 296:
            return (37, 99, 235)
        return (241, 243, 245)

    rows = b"".join(b"\x00" + b"".join(bytes(color(x, y)) for x in range(width)) for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


# What the agent's python tool runs: the function above, then a file the tool returns as an image.
SCREENSHOT_CODE = ("import struct, zlib\n\n" + inspect.getsource(fake_screenshot)
                   + "\nopen('screenshot.png', 'wb').write(fake_screenshot())\nprint('saved screenshot.png')\n")

SCRIPT = [
    Turn([thinking("The user wants a check of the shell first, then a look at the app."),
          text("I'll check the workspace first. <b>Markup</b> stays text."),
          tool_use("bash", {"command": "echo hello from bash"})]),
    Turn([text("The shell works. Now a screenshot of the app."),
          tool_use("python", {"code": SCREENSHOT_CODE})]),
    Turn([text("All done: the shell answers and the app shows its form.")]),
    # Then the fake echoes each follow-up back.
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, process: subprocess.Popen, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"tether serve did not become healthy (exit code {process.poll()})")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """``tether serve`` on loopback with a fake model; yields (url, token, its directory, the fake)."""
    root = tmp_path_factory.mktemp("page")
    with FakeAPI() as fake:
        env = {**os.environ, "ANTHROPIC_API_KEY": API_KEY, "ANTHROPIC_BASE_URL": fake.base_url,
               "TETHER_STORE_URL": str(root / "sessions.db"), "HOME": str(root), "XDG_DATA_HOME": str(root),
               "TETHER_TENANT_BUDGET": "1000"}
        made = subprocess.run([*TETHER, "tokens", "create", "--name", "page-test", "--scopes", "read,run"],
                              env=env, capture_output=True, text=True, timeout=60, check=True)
        token = next(w for w in made.stdout.split() if w.startswith("tth_"))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = (root / "serve.log").open("w")
        process = subprocess.Popen([*TETHER, "serve", "--host", "127.0.0.1", "--port", str(port)],
                                   env=env, cwd=root, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_healthy(url, process)
            yield url, token, root, fake
        finally:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, service):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.set_default_timeout(15_000)
    yield page
    context.close()
    assert not errors, f"the page threw: {errors}"


def shot(page, root: Path, name: str) -> Path:
    path = root / "screenshots" / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


def unnamed_controls(page) -> list[str]:
    """The visible form controls and buttons a screen reader could not name."""
    return page.evaluate("""() => [...document.querySelectorAll("input, select, textarea, button")]
        .filter((el) => el.offsetParent !== null)
        .filter((el) => !(el.labels?.length || el.getAttribute("aria-label") || el.textContent.trim()))
        .map((el) => el.outerHTML.slice(0, 80))""")


def sign_in(page, url: str, token: str) -> None:
    page.goto(url)
    page.get_by_label("Service token").fill(token)
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("navigation", name="Views")).to_be_visible()


def test_the_page_drives_a_run_from_token_to_usage(page, service):
    url, token, root, fake = service
    fake.script(SCRIPT, key=API_KEY)
    fake.set_latency(per_token=0.004, key=API_KEY)  # text arrives in pieces, as it streams

    # Sign in: the token goes to sessionStorage, and nowhere in the page or its URL.
    sign_in(page, url, token)
    assert page.evaluate("sessionStorage.getItem('tether.token')") == token
    assert token not in page.content() and token not in page.url

    assert unnamed_controls(page) == []

    # Start a run: bash asks first, python runs freely.
    page.get_by_label("Task").fill(TASK)
    page.get_by_label("Use python").check()
    page.get_by_label("Approval for bash").select_option("ask")
    page.get_by_label("Approval for python").select_option("allow")
    page.get_by_label("Dollars").fill("5")
    page.get_by_role("button", name="Start run").click()

    transcript = page.locator("#transcript")
    expect(transcript.locator(".assistant").first).to_contain_text("I'll check the workspace first.")
    # Model text is text: the markup in it is shown, never parsed.
    expect(transcript.locator(".assistant").first).to_contain_text("<b>Markup</b> stays text.")
    assert transcript.locator("b").count() == 0
    thinking_block = transcript.locator("details.thinking").first
    expect(thinking_block).not_to_have_attribute("open", "")
    expect(thinking_block).to_contain_text("check of the shell")

    # The bash call waits for approval.
    approval = page.get_by_role("group", name="Approve bash")
    expect(approval).to_be_visible()
    expect(page.locator("#live-status")).to_have_text("waiting approval")
    expect(transcript.locator("[data-tool-id] .input").first).to_contain_text("echo hello from bash")
    shot(page, root, "1-approval")
    approval.get_by_role("button", name="Allow", exact=True).click()
    expect(approval).to_contain_text("You allowed this call.")

    # Its result, the screenshot the python tool saved, the cost of each turn, the final answer.
    expect(transcript.locator(".result").first).to_contain_text("hello from bash")
    image = transcript.locator(".result img")
    expect(image).to_be_visible()
    assert image.evaluate("img => img.decode().then(() => img.naturalWidth)") == 320  # once loaded
    expect(transcript).to_contain_text("All done: the shell answers")
    expect(page.locator("#live-status")).to_have_text("completed")
    first_run = page.locator("#live-id").inner_text()
    expect(transcript.locator(".usage")).to_have_count(3)
    expect(transcript.locator(".usage").first).to_contain_text("cache write")
    expect(page.locator("#live-cost")).to_contain_text("$")
    image.scroll_into_view_if_needed()
    shot(page, root, "2-run")

    # A follow-up: the fake model echoes it.
    page.get_by_label("Follow-up").fill("Thanks, please summarise.")
    page.get_by_role("button", name="Send").click()
    expect(transcript.locator(".user")).to_contain_text("Thanks, please summarise.")
    expect(transcript.locator(".assistant").last).to_contain_text("Thanks, please summarise.")
    expect(page.locator("#live-status")).to_have_text("completed")

    # Sessions: the run's session is listed; fork it, open the fork.
    page.get_by_role("button", name="Sessions").click()
    rows = page.locator("#sessions tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(TASK)
    page.get_by_role("button", name=f"Fork {TASK}").click()
    expect(page.locator("#sessions-note")).to_contain_text("Forked")
    expect(rows).to_have_count(2)
    fork = page.locator("#sessions tbody tr.fresh")
    fork.get_by_role("button", name="Open").click()
    detail = page.locator("#session-detail")
    expect(detail).to_contain_text("hello from bash")
    expect(detail.locator("img")).to_have_count(1)
    shot(page, root, "3-sessions")
    assert unnamed_controls(page) == []
    with page.expect_download() as download:
        fork.get_by_role("button", name="Export").click()
    exported = Path(download.value.path()).read_text()
    assert download.value.suggested_filename.endswith(".md") and "hello from bash" in exported

    # Resume the fork, which no run holds: a new run continues its conversation.
    fork.get_by_role("button", name="Resume").click()
    expect(page.locator("#resume-note")).to_contain_text(TASK)
    page.get_by_label("Task").fill("One more check, please.")
    page.get_by_role("button", name="Resume session").click()
    expect(page.locator("#live-id")).not_to_have_text(first_run)
    expect(transcript.locator(".assistant").last).to_contain_text("One more check, please.")
    expect(page.locator("#live-status")).to_have_text("completed")

    # Resume the original session: its run is still held by the service, so it takes a follow-up.
    page.get_by_role("button", name="Sessions").click()
    rows.filter(has_not_text="(fork)").get_by_role("button", name="Resume").click()
    expect(page.locator("#live-id")).to_have_text(first_run)
    expect(page.get_by_label("Follow-up")).to_be_focused()

    # Usage: the totals count the run's turns and dollars.
    page.get_by_role("button", name="Usage").click()
    totals = page.locator("#usage-totals")
    expect(totals).to_contain_text("Cost")
    expect(page.locator("#usage tbody tr")).not_to_have_count(0)
    # The tenant's budget for the month (TETHER_TENANT_BUDGET), and what is left of it.
    budget = page.locator("#budgets tbody tr")
    expect(budget).to_have_count(1)
    expect(budget).to_contain_text("$1000.00")
    expect(budget.locator("td").last).to_contain_text("$999.")
    shot(page, root, "4-usage")


def test_the_page_interrupts_a_run(page, service):
    url, token, _, fake = service
    fake.script([Turn([text("Counting slowly: " + " ".join(str(n) for n in range(2000)))])], key=API_KEY)
    fake.set_latency(per_token=0.05, key=API_KEY)
    sign_in(page, url, token)
    page.get_by_label("Task").fill("Count to two thousand")
    page.get_by_label("Use bash").uncheck()
    page.get_by_label("Use editor").uncheck()
    page.get_by_role("button", name="Start run").click()
    expect(page.locator("#transcript .assistant")).to_contain_text("Counting slowly")

    page.get_by_role("button", name="Interrupt").click()
    expect(page.locator("#live-status")).to_have_text("idle")
    expect(page.get_by_role("button", name="Interrupt")).to_be_disabled()
    assert "1999" not in page.locator("#transcript").inner_text()

    # A reload comes back to the run (its id is in the address, the token in sessionStorage).
    shown = page.locator("#transcript .assistant").inner_text()
    page.reload()
    expect(page.locator("#live-status")).to_have_text("idle")
    expect(page.locator("#transcript .assistant")).to_have_text(shown)


def test_the_page_shows_any_status_the_service_sends(page, service):
    """Statuses are the service's words: "idle" (a session at rest that nothing runs, such as a fresh
    fork) reads as at rest, and a status the page has never heard of is shown as it is."""
    url, token, _, _ = service
    sessions = [{"id": f"ses_{status or 'none'}", "title": f"a session {status}", "tags": [], "model": "m",
                 "status": status, "parent_id": None, "turns": 0, "dollars": 0, "run_id": None}
                for status in ("idle", "brand_new_state", None)]
    page.route("**/v1/sessions?**", lambda route: route.fulfill(json={"sessions": sessions, "limit": 50,
                                                                      "offset": 0}))
    sign_in(page, url, token)
    page.get_by_role("button", name="Sessions").click()
    badges = page.locator("#sessions tbody .status")
    expect(badges).to_have_text(["idle", "brand new state", "unknown"])
    assert "nothing is running it" in badges.first.get_attribute("title")
    assert badges.first.evaluate("el => getComputedStyle(el).borderStyle") == "dashed"
    assert badges.nth(1).get_attribute("title") is None
    # The filter offers what the service's OpenAPI document lists, whatever the store adds.
    document = page.evaluate("async () => (await fetch('openapi.json', {headers: {Authorization: "
                             "'Bearer ' + sessionStorage.getItem('tether.token')}})).json()")
    [status] = [p for p in document["paths"]["/v1/sessions"]["get"]["parameters"] if p["name"] == "status"]
    options = page.locator("#search-status option")
    expect(options).to_have_count(1 + len(status["schema"]["enum"]))
    assert options.evaluate_all("els => els.map((el) => el.value)") == ["", *status["schema"]["enum"]]


def test_the_page_refuses_a_bad_token(page, service):
    url = service[0]
    page.goto(url)
    page.get_by_label("Service token").fill("tth_0000000000000000_notarealtokennotarealtoken")
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("alert")).to_contain_text("refused")
    expect(page.get_by_label("Service token")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('tether.token')") is None


def test_the_event_stream_parser(page, service):
    """sse.js against the spec's corner cases: split chunks, CRLF, comments, multi-line data, ids."""
    url = service[0]
    page.goto(url)
    messages = page.evaluate("""async () => {
        const { parser } = await import("./static/sse.js");
        const out = [];
        const p = parser((m) => out.push(m));
        for (const chunk of [": hello\\r", "\\nid: 7\\r\\nevent: text_delta\\ndata: {\\"a\\"", ":1}\\n\\n",
                             "data: one\\ndata: two\\r\\r", "id\\ndata:x\\n\\n", "event: x\\n\\n"]) p.feed(chunk);
        return out;
    }""")
    assert messages == [
        {"id": "7", "event": "text_delta", "data": '{"a":1}'},
        {"id": "7", "event": "message", "data": "one\ntwo"},
        {"id": "", "event": "message", "data": "x"},
    ]


def test_the_event_stream_reconnects_after_the_last_event_it_had(page, service):
    """A stream cut mid-way is opened again with Last-Event-ID; a 204 (nothing more) ends it."""
    page.goto(service[0])
    result = page.evaluate(r"""async () => {
        const { EventStream } = await import("./static/sse.js");
        const asked = [], got = [];
        const body = (frames, fail) => new ReadableStream({
            start(controller) {
                for (const f of frames) controller.enqueue(new TextEncoder().encode(f));
                // The connection breaks (or ends) once the frames have been read.
                setTimeout(() => fail ? controller.error(new TypeError("network error")) : controller.close(), 50);
            },
        });
        const answers = [
            () => new Response(body(["retry: 10\n\nid: 1\ndata: a\n\n", "id: 2\ndata: b\n\n"], true)),
            () => new Response(body(["id: 3\ndata: c\n\n"], false)),
            () => new Response(null, { status: 204 }),
        ];
        return await new Promise((resolve) => {
            const stream = new EventStream(
                async (lastId) => { asked.push(lastId); return answers[asked.length - 1](); },
                (m) => got.push(m.data),
                (state) => { if (state === "closed") resolve({ asked, got }); },
            );
            stream.open();
        });
    }""")
    assert result == {"asked": ["", "2", "3"], "got": ["a", "b", "c"]}
