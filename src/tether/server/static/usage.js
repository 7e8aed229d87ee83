// The Usage view: tokens and dollars grouped by model, day or tenant, with totals.

import { $, dollars, h, show, tokens, when } from "./dom.js";

const COLUMNS = [
  ["turns", "Turns", String],
  ["input_tokens", "Input", tokens],
  ["output_tokens", "Output", tokens],
  ["cache_read_tokens", "Cache read", tokens],
  ["cache_write_tokens", "Cache write", tokens],
  ["dollars", "Cost", dollars],
];

export class UsageView {
  constructor(api, alert) {
    this.api = api;
    this.alert = alert;
    $("#usage-form").addEventListener("submit", (e) => { e.preventDefault(); this.refresh(); });
    $("#usage-by").addEventListener("change", () => this.refresh());
  }

  async refresh() {
    const by = $("#usage-by").value;
    let answer;
    try {
      answer = await this.api.get("v1/usage", { by });
    } catch (error) {
      this.alert(error);
      return;
    }
    const { rows, total } = answer;
    $("#usage thead").replaceChildren(h("tr", {}, h("th", { scope: "col" }, by[0].toUpperCase() + by.slice(1)),
      ...COLUMNS.map(([, label]) => h("th", { scope: "col", class: "num" }, label))));
    $("#usage tbody").replaceChildren(...rows.map((row) => h("tr", {},
      h("th", { scope: "row" }, row.key ?? "(none)"),
      ...COLUMNS.map(([key, , format]) => h("td", { class: "num" }, format(row[key] ?? 0))))));
    $("#usage-totals").replaceChildren(
      ...COLUMNS.map(([key, label, format]) => h("div", { class: "total" },
        h("span", { class: "label" }, label), h("span", { class: "value" }, format(total[key] ?? 0)))));
    budgets(answer.budgets);
  }
}

/** Each tenant's budget this month ([server.budgets]); hidden when the service sets none. */
function budgets(view) {
  show($("#budgets"), Boolean(view && view.tenants.length));
  if (!view) return;
  $("#budgets-period").textContent = `for ${view.period} (UTC); renews ${when(view.renews_at)}`;
  $("#budgets tbody").replaceChildren(...view.tenants.map((b) => h("tr", { class: b.exhausted ? "spent" : null },
    h("th", { scope: "row" }, b.tenant),
    h("td", { class: "num" }, b.limit == null ? "no limit" : dollars(b.limit)),
    h("td", { class: "num" }, dollars(b.spent)),
    h("td", { class: "num" }, b.limit == null ? "" : b.exhausted ? "spent" : dollars(b.remaining)))));
}
