// Small DOM helpers. Text goes in as text nodes only: nothing here parses HTML.

/** Make an element: h("li", {class: "x", onclick: f}, "text", child). */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value == null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  // append() turns strings into text nodes: markup in them stays text.
  el.append(...children.flat().filter((c) => c != null && c !== false));
  return el;
}

export const $ = (selector, root = document) => root.querySelector(selector);

/** A value for a URL path segment. */
export const enc = encodeURIComponent;

export function show(el, visible = true) {
  el.hidden = !visible;
}

const count = new Intl.NumberFormat("en-US");

export function tokens(n) {
  return count.format(n || 0);
}

export function dollars(value) {
  const v = Number(value) || 0;
  return "$" + (v !== 0 && v < 0.01 ? v.toFixed(4) : v.toFixed(v < 100 ? 4 : 2));
}

// What a status means, for the ones the page knows; any other status the service sends is shown as it is.
const STATUS_HINTS = new Map([
  ["idle", "At rest: nothing is running it. Send a follow-up, or resume it, to continue."],
  ["interrupted", "Stopped before it finished. Resume it to continue."],
  ["waiting_approval", "A tool call waits for a decision."],
]);

/** A status as words ("waiting_approval" reads "waiting approval"); whatever string the service sends. */
export function statusText(status) {
  return status == null || status === "" ? "unknown" : String(status).replaceAll("_", " ");
}

/** Show ``status`` in ``el``: its words, ``data-status`` for the style, and what it means as a tooltip. */
export function showStatus(el, status) {
  el.textContent = statusText(status);
  el.dataset.status = status ?? "unknown";
  const hint = STATUS_HINTS.get(status);
  if (hint) el.title = hint;
  else el.removeAttribute("title");
  return el;
}

/** A status badge: <span class="status">. */
export const statusBadge = (status) => showStatus(h("span", { class: "status" }), status);

export function when(value) {
  if (!value) return "";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
}

/** Pretty JSON of a value, or the raw text when it is not JSON. */
export function pretty(value) {
  if (typeof value === "string") {
    try {
      return JSON.stringify(JSON.parse(value), null, 2);
    } catch {
      return value;
    }
  }
  return JSON.stringify(value, null, 2);
}
