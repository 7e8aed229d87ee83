// A run's events, drawn as a transcript. Everything the model or a tool wrote is set as text
// (text nodes, textContent); images are shown only from base64 data of an image media type.

import { dollars, h, pretty, tokens } from "./dom.js";

const IMAGE_TYPES = new Set(["image/png", "image/jpeg", "image/gif", "image/webp"]);

export class Transcript {
  /**
   * @param {HTMLElement} root the element to draw into
   * @param {{decide?: (toolUseId: string, decision: string) => Promise<void>,
   *          onUsage?: (event: object) => void}} hooks
   */
  constructor(root, hooks = {}) {
    this.root = root;
    this.hooks = hooks;
    this.clear();
  }

  clear() {
    this.root.replaceChildren();
    this.text = null; // the Text node that text_delta appends to
    this.thinking = null; // the Text node that thinking_delta appends to
    this.tools = new Map(); // tool_use id -> {card, input, result, approval}
  }

  /** Draw one event (the to_dict form of tether's events, plus the service's). */
  apply(event) {
    const draw = this[`on_${event.type}`];
    if (draw) draw.call(this, event);
    if (!["text_delta", "thinking_delta"].includes(event.type)) {
      this.text = null;
      this.thinking = null;
    }
  }

  add(node) {
    this.root.append(node);
    return node;
  }

  on_run_started(e) {
    this.add(h("p", { class: "meta" }, `Started on ${e.model}: `, h("q", {}, e.task || "(resumed)")));
  }

  on_user_message(e) {
    this.add(h("div", { class: "user" }, e.text));
  }

  on_text_delta(e) {
    if (!this.text) {
      this.text = document.createTextNode("");
      this.add(h("div", { class: "assistant" }, this.text));
    }
    this.text.appendData(e.text);
    this.follow();
  }

  on_thinking_delta(e) {
    if (!this.thinking) {
      this.thinking = document.createTextNode("");
      this.add(h("details", { class: "thinking" }, h("summary", {}, "Thinking"), h("pre", {}, this.thinking)));
    }
    this.thinking.appendData(e.thinking);
  }

  tool(id, name) {
    let tool = this.tools.get(id);
    if (!tool) {
      const input = h("pre", { class: "input" });
      const card = h("section", { class: "tool", "data-tool-id": id, "aria-label": `Tool call ${name || ""}` },
        h("header", {}, h("span", { class: "tool-name" }, name || "tool"), h("span", { class: "tool-state" }, "writing…")),
        input);
      tool = { card, input, state: card.querySelector(".tool-state") };
      this.tools.set(id, tool);
      this.add(card);
    }
    return tool;
  }

  on_tool_call_started(e) {
    this.tool(e.id, e.name);
  }

  on_tool_input_delta(e) {
    this.tool(e.id).input.append(e.partial_json);
  }

  on_tool_call_finished(e) {
    const tool = this.tool(e.id, e.name);
    const input = h("div", { class: "input" }, ...inputView(e.input));
    tool.input.replaceWith(input);
    tool.input = input;
    if (!tool.done) tool.state.textContent = "running…";
  }

  on_approval_requested(e) {
    const tool = this.tool(e.tool_use_id, e.name);
    if (tool.approval || tool.done) return;
    const note = h("span", { class: "note", role: "status" });
    const choose = (decision) => async () => {
      for (const button of buttons) button.disabled = true;
      try {
        await this.hooks.decide(e.tool_use_id, decision);
        const said = { yes: "You allowed this call.", no: "You denied this call.",
          always: `You allowed ${e.name} for the rest of this run.` }[decision];
        tool.approval.replaceChildren(h("span", { class: "decided", role: "status" }, said));
      } catch (error) {
        note.textContent = `Could not send: ${error.describe ? error.describe() : error.message}`;
        for (const button of buttons) button.disabled = false;
      }
    };
    const buttons = [
      h("button", { type: "button", onclick: choose("yes") }, "Allow"),
      h("button", { type: "button", class: "danger", onclick: choose("no") }, "Deny"),
      h("button", { type: "button", class: "quiet", onclick: choose("always") }, `Always allow ${e.name}`),
    ];
    tool.approval = h("div", { class: "approval", role: "group", "aria-label": `Approve ${e.name}` },
      h("strong", {}, `${e.name} needs your approval`), ...buttons, note);
    tool.state.textContent = "waiting for approval";
    tool.card.classList.add("asking");
    tool.card.append(tool.approval);
    if (document.activeElement === document.body) tool.approval.querySelector("button").focus({ preventScroll: true });
    this.follow();
  }

  on_approval_resolved(e) {
    const tool = this.tools.get(e.tool_use_id);
    if (!tool?.approval || tool.approval.querySelector(".decided")) return;
    const said = { yes: "Allowed.", no: "Denied.", always: "Allowed for the rest of this run." }[e.decision];
    tool.approval.replaceChildren(h("span", { class: "decided", role: "status" }, said || e.decision));
    tool.card.classList.remove("asking");
  }

  on_tool_result(e) {
    const tool = this.tool(e.id, e.name);
    tool.done = true;
    tool.card.classList.remove("asking");
    tool.approval?.querySelectorAll("button").forEach((b) => b.remove());
    tool.card.classList.toggle("error", Boolean(e.is_error));
    tool.state.textContent = `${e.is_error ? "failed" : "done"} in ${Number(e.seconds || 0).toFixed(1)} s`;
    tool.card.append(h("div", { class: "result" }, ...resultContent(e.content, e.name)));
    this.follow();
  }

  on_usage(e) {
    const u = e.usage || {};
    const writes = (u.cache_write_5m_tokens || 0) + (u.cache_write_1h_tokens || 0) || u.cache_creation_input_tokens || 0;
    this.add(h("p", { class: "usage" },
      `Turn ${e.turn} · input ${tokens(u.input_tokens)} · output ${tokens(u.output_tokens)}`,
      ` · cache read ${tokens(u.cache_read_input_tokens)} · cache write ${tokens(writes)}`,
      ` · ${dollars(e.dollars)} (run ${dollars(e.total_dollars)})`));
    this.hooks.onUsage?.(e);
  }

  on_warning(e) {
    this.add(h("p", { class: "warning" }, `Warning (${e.code}): ${e.message}`));
  }

  on_compacted(e) {
    this.add(h("p", { class: "meta" },
      `Context ${e.kind}: ${tokens(e.tokens_before)} → ${tokens(e.tokens_after)} tokens`));
  }

  on_gap(e) {
    this.add(h("p", { class: "warning" },
      `${e.missed} events were too old to resend; the session keeps the whole conversation.`));
  }

  on_run_end(e) {
    const failed = e.outcome !== "completed";
    this.add(h("p", { class: failed ? "end error" : "end" },
      `Run ${e.outcome} after ${e.turns} turn${e.turns === 1 ? "" : "s"} · ${dollars(e.dollars)}`,
      e.error ? ` · ${e.error}` : ""));
  }

  /** Keep the newest output in view, unless the reader has scrolled up. */
  follow() {
    const r = this.root;
    if (r.scrollHeight - r.scrollTop - r.clientHeight < 120) r.scrollTop = r.scrollHeight;
  }
}

/** A tool's input: each field on its own, strings as they are (a command, code), folded when long. */
export function inputView(input) {
  if (!input || typeof input !== "object" || Array.isArray(input)) return [h("pre", {}, pretty(input))];
  return Object.entries(input).map(([key, value]) => {
    const text = typeof value === "string" ? value : pretty(value);
    const lines = text.split("\n").length;
    if (lines > 12) {
      return h("details", { class: "field" }, h("summary", {}, `${key} (${lines} lines)`), h("pre", {}, text));
    }
    return h("div", { class: "field" }, h("span", { class: "key" }, key), h("pre", {}, text));
  });
}

/** The children of a tool result: text as preformatted text, images as <img>. */
export function resultContent(content, name = "tool") {
  if (typeof content === "string") return [h("pre", {}, content)];
  return (content || []).map((block) => {
    if (block.type === "text") return h("pre", {}, block.text);
    if (block.type === "image") return image(block.source, `Image from ${name}`);
    return h("pre", { class: "meta" }, `[${block.type} block]`);
  });
}

function image(source, alt) {
  if (source?.type !== "base64" || !IMAGE_TYPES.has(source.media_type) || !/^[A-Za-z0-9+/=\s]*$/.test(source.data)) {
    return h("p", { class: "meta" }, "[image not shown]");
  }
  const img = h("img", { alt, loading: "lazy" });
  img.src = `data:${source.media_type};base64,${source.data.replace(/\s/g, "")}`;
  return h("figure", {}, img);
}
