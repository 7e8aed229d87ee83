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
