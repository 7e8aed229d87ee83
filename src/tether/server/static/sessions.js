// The Sessions view: search, open, resume, fork and export stored sessions.

import { $, dollars, enc, h, show, statusBadge, statusText, when } from "./dom.js";
import { inputView, resultContent } from "./transcript.js";

export class SessionsView {
  /** @param {(session: object) => void} onResume switches to the Run view to continue a session */
  constructor(api, alert, onResume) {
    this.api = api;
    this.alert = alert;
    this.onResume = onResume;
    $("#session-search").addEventListener("submit", (e) => { e.preventDefault(); this.refresh(); });
  }

  async refresh(highlight = null) {
    await this.#statusFilter();
    const form = $("#session-search");
    const query = { search: form.elements.search.value.trim(), tag: form.elements.tag.value.trim(),
      status: form.elements.status.value, limit: 50 };
    let answer;
    try {
      answer = await this.api.get("v1/sessions", query);
    } catch (error) {
      this.alert(error);
      return;
    }
    const sessions = answer.sessions;
    $("#sessions tbody").replaceChildren(...sessions.map((s) => this.#row(s, s.id === highlight)));
    if (!highlight) $("#sessions-note").textContent = `${sessions.length} session${sessions.length === 1 ? "" : "s"}`;
  }

  /** Offer the statuses the service's OpenAPI document lists for the filter (once; "any" if that fails). */
  async #statusFilter() {
    if (this.statuses) return;
    this.statuses = [];
    try {
      const doc = await this.api.get("openapi.json");
      const status = doc.paths["/v1/sessions"].get.parameters.find((p) => p.name === "status");
      this.statuses = status.schema.enum;
    } catch {
      return; // the filter keeps "any"
    }
    $("#search-status").append(...this.statuses.map((s) => h("option", { value: s }, statusText(s))));
  }

  #row(s, highlight) {
    const action = (label, handler, extra = {}) =>
      h("button", { type: "button", class: "quiet", onclick: handler, "aria-label": `${label} ${s.title || s.id}`, ...extra }, label);
    return h("tr", { class: highlight ? "fresh" : null, "data-session-id": s.id },
      h("td", {}, s.title || h("code", {}, s.id), s.parent_id ? h("span", { class: "meta" }, " (fork)") : null,
        (s.tags || []).map((tag) => h("span", { class: "tag" }, tag))),
      h("td", {}, statusBadge(s.status)),
      h("td", {}, s.model || ""),
      h("td", { class: "num" }, s.turns ?? ""),
      h("td", { class: "num" }, s.dollars == null ? "" : dollars(s.dollars)),
      h("td", {}, when(s.updated_at || s.created_at)),
      h("td", { class: "actions" },
        action("Open", () => this.open(s)),
        action("Resume", () => this.onResume(s)),
        action("Fork", () => this.fork(s)),
        action("Export", () => this.export(s, "markdown"), { title: "Download as Markdown" })));
  }

  async open(s) {
    let detail;
    try {
      detail = await this.api.get(`v1/sessions/${enc(s.id)}`);
    } catch (error) {
      this.alert(error);
      return;
    }
    const { messages, ...info } = detail;
    $("#detail-title").textContent = info.title || info.id;
    const names = new Map(); // tool_use id -> tool name, for the results that follow
    $("#detail-body").replaceChildren(
      h("p", { class: "meta" }, `${info.id} · ${info.model || ""} · ${info.turns ?? 0} turns · ${dollars(info.dollars)}`),
      ...messages.map((m) => message(m, names)));
    show($("#session-detail"));
    $("#detail-title").focus();
  }

  async fork(s) {
    try {
      const forked = await this.api.post(`v1/sessions/${enc(s.id)}/fork`, {});
      $("#sessions-note").textContent = `Forked ${s.title || s.id} into ${forked.id}.`;
      await this.refresh(forked.id);
    } catch (error) {
      this.alert(error);
    }
  }

  /** Download an export: fetched with the token, handed to the browser as a blob (no token in a URL). */
  async export(s, format) {
    try {
      const response = await this.api.fetch("GET", `v1/sessions/${enc(s.id)}/export`, { query: { format } });
      const url = URL.createObjectURL(await response.blob());
      const link = h("a", { href: url, download: `${s.id}.${format === "json" ? "json" : "md"}` });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (error) {
      this.alert(error);
    }
  }
}

/** One stored message (wire form) as a transcript entry. */
function message(m, names) {
  const blocks = typeof m.content === "string" ? [{ type: "text", text: m.content }] : m.content || [];
  const results = blocks.length > 0 && blocks.every((b) => b.type === "tool_result");
  return h("div", { class: m.role === "user" && !results ? "user" : "assistant-msg" },
    h("span", { class: "role" }, results ? "tool results" : m.role), ...blocks.map((b) => block(b, names)));
}

function block(b, names) {
  switch (b.type) {
    case "text":
      return h("div", { class: "assistant" }, b.text);
    case "thinking":
      return h("details", { class: "thinking" }, h("summary", {}, "Thinking"), h("pre", {}, b.thinking));
    case "tool_use":
      names.set(b.id, b.name);
      return h("section", { class: "tool" }, h("header", {}, h("span", { class: "tool-name" }, b.name)),
        h("div", { class: "input" }, ...inputView(b.input)));
    case "tool_result": {
      const name = names.get(b.tool_use_id) || "tool";
      return h("section", { class: b.is_error ? "tool error" : "tool" },
        h("header", {}, h("span", { class: "tool-name" }, name), h("span", { class: "tool-state" }, "result")),
        h("div", { class: "result" }, ...resultContent(b.content, name)));
    }
    default:
      return h("p", { class: "meta" }, `[${b.type}]`);
  }
}
