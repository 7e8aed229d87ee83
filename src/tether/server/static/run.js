// The Run view: the form that starts a run, the recent runs, and one run watched live.

import { $, dollars, enc, h, show, showStatus, statusBadge, statusText } from "./dom.js";
import { EventStream } from "./sse.js";
import { Transcript } from "./transcript.js";

const TOOLS = [
  { name: "bash", label: "bash (shell)", use: true, mode: "ask" },
  { name: "editor", label: "editor (files)", use: true, mode: "allow" },
  { name: "python", label: "python", use: false, mode: "allow" },
];
// The run statuses in which a run works (it can be interrupted); any other status is at rest.
const ACTIVE = new Set(["queued", "running", "waiting_approval"]);

export class RunView {
  constructor(api, alert) {
    this.api = api;
    this.alert = alert;
    this.stream = null;
    this.run = null;
    this.resumeId = null;
    this.transcript = new Transcript($("#transcript"), {
      decide: (toolUseId, decision) =>
        this.api.post(`v1/runs/${enc(this.run.id)}/approvals/${enc(toolUseId)}`, { decision }),
      onUsage: (e) => { $("#live-cost").textContent = dollars(e.total_dollars); },
    });
    this.#toolRows();
    $("#run-form").addEventListener("submit", (e) => { e.preventDefault(); this.start(); });
    $("#follow-up").addEventListener("submit", (e) => { e.preventDefault(); this.followUp(); });
    $("#interrupt").addEventListener("click", () => this.#control("interrupt"));
    $("#cancel").addEventListener("click", () => this.#control("cancel"));
    $("#resume-clear").addEventListener("click", () => this.resume(null));
  }

  #toolRows() {
    $("#tool-rows").replaceChildren(...TOOLS.map((tool) => {
      const select = h("select", { name: `mode-${tool.name}`, "aria-label": `Approval for ${tool.name}` },
        ...["allow", "ask", "deny"].map((mode) => h("option", { value: mode, selected: mode === tool.mode }, mode)));
      return h("tr", {},
        h("th", { scope: "row" }, tool.label),
        h("td", {}, h("input", { type: "checkbox", name: `use-${tool.name}`, checked: tool.use,
          "aria-label": `Use ${tool.name}` })),
        h("td", {}, select));
    }));
  }

  /** The request the form describes (see POST /v1/runs). */
  request() {
    const form = $("#run-form");
    const value = (name) => form.elements[name].value.trim();
    const tools = TOOLS.map((t) => t.name).filter((name) => form.elements[`use-${name}`].checked);
    const body = { task: value("task") };
    if (value("model")) body.model = value("model");
    if (tools.length) {
      body.tools = tools;
      body.permissions = Object.fromEntries(tools.map((name) => [name, form.elements[`mode-${name}`].value]));
    }
    const limits = {};
    if (value("max_dollars")) limits.max_dollars = Number(value("max_dollars"));
    if (value("max_turns")) limits.max_turns = Number(value("max_turns"));
    if (Object.keys(limits).length) body.limits = limits;
    if (value("title")) body.title = value("title");
    const tags = value("tags").split(",").map((t) => t.trim()).filter(Boolean);
    if (tags.length) body.tags = tags;
    if (this.resumeId) body.session_id = this.resumeId;
    return body;
  }

  async start() {
    const body = this.request();
    if (!body.task && !body.session_id) {
      this.alert("Write a task first.");
      $("#task").focus();
      return;
    }
    try {
      const run = await this.api.post("v1/runs", body);
      $("#task").value = "";
      this.resume(null);
      this.watch(run);
      this.refreshRuns();
    } catch (error) {
      this.alert(error);
    }
  }

  /**
   * Continue a session (from the Sessions view): its run, if the service still holds one, takes a
   * follow-up; otherwise the form starts a new run in the session.
   */
  async continueSession(session) {
    if (session.run_id) {
      try {
        const run = await this.api.get(`v1/runs/${enc(session.run_id)}`);
        if (run.session_id === session.id && run.status !== "cancelled") {
          this.resume(null);
          this.watch(run);
          $("#follow-text").focus();
          return;
        }
      } catch (error) {
        if (error.status !== 404) this.alert(error);
      }
    }
    this.resume(session);
    $("#task").focus();
  }

  /** Start the next run in ``session``, or (null) in a new session. */
  resume(session) {
    this.resumeId = session ? session.id : null;
    $("#resume-title").textContent = session ? session.title || session.id : "";
    show($("#resume-note"), Boolean(session));
    $("#start").textContent = session ? "Resume session" : "Start run";
  }

  /** Show the run with this id (the page's address names it, so a reload comes back to it). */
  async open(id) {
    try {
      this.watch(await this.api.get(`v1/runs/${enc(id)}`));
    } catch (error) {
      this.alert(error);
    }
  }

  /** Show one run and follow its events from the start. */
  watch(run) {
    this.stream?.close();
    this.run = run;
    history.replaceState(null, "", `#run/${enc(run.id)}`);
    this.seen = new Set();
    this.transcript.clear();
    $("#live-id").textContent = run.id;
    $("#live-cost").textContent = "";
    this.#status(run.status || "queued");
    show($("#live"));
    this.stream = new EventStream(
      (lastId, signal) => this.api.fetch("GET", `v1/runs/${enc(run.id)}/events`, {
        headers: { Accept: "text/event-stream", ...(lastId ? { "Last-Event-ID": lastId } : {}) }, signal,
      }),
      (message) => this.#message(message),
      (state, error) => {
        if (state === "retrying") $("#live-status").textContent = "reconnecting…";
        if (state === "open") $("#live-status").textContent = statusText(this.status);
        if (error && state === "closed") this.alert(error);
      },
    );
    this.stream.open();
  }

  #message({ id, event, data }) {
    if (id) {
      if (this.seen.has(id)) return;
      this.seen.add(id);
    }
    let payload;
    try {
      payload = JSON.parse(data);
    } catch {
      return;
    }
    const type = payload.type || event;
    if (type === "run_status") this.#status(payload.status);
    this.transcript.apply({ ...payload, type });
  }

  #status(status) {
    this.status = status;
    showStatus($("#live-status"), status);
    const active = ACTIVE.has(status);
    $("#interrupt").disabled = !active;
    $("#cancel").disabled = status === "cancelled";
    if (!active) {
      if (this.stream) this.stream.finished = true; // read on until the service ends the stream
      this.refreshRuns();
    }
  }

  async followUp() {
    const field = $("#follow-text");
    const text = field.value.trim();
    if (!text || !this.run) return;
    try {
      await this.api.post(`v1/runs/${enc(this.run.id)}/messages`, { text });
      field.value = "";
      this.transcript.apply({ type: "user_message", text });
      this.#status("queued");
      this.stream.open(); // reads on from the last event if the service ended the stream
    } catch (error) {
      this.alert(error);
    }
  }

  async #control(action) {
    if (!this.run) return;
    try {
      await this.api.post(`v1/runs/${enc(this.run.id)}/${action}`);
    } catch (error) {
      this.alert(error);
    }
  }

  async refreshRuns() {
    let answer;
    try {
      answer = await this.api.get("v1/runs", { limit: 10 });
    } catch (error) {
      this.alert(error);
      return;
    }
    $("#runs").replaceChildren(...answer.runs.map((run) =>
      h("li", {},
        h("button", { type: "button", class: "link", onclick: () => this.watch(run) }, run.title || run.id),
        " ", statusBadge(run.status))));
  }
}
