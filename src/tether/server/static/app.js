// tether's web page: sign in with a service token, start and watch runs, browse sessions, see usage.
// Plain ES modules, no build step; the service serves this folder under /static/.

import { Api, ApiError } from "./api.js";
import { $, show } from "./dom.js";
import { RunView } from "./run.js";
import { SessionsView } from "./sessions.js";
import { UsageView } from "./usage.js";

const TOKEN_KEY = "tether.token";
const base = new URL("../", import.meta.url); // the service's root, behind any path prefix

const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY),
  set: (value) => sessionStorage.setItem(TOKEN_KEY, value),
  forget: () => sessionStorage.removeItem(TOKEN_KEY),
};

function alert(problem) {
  const box = $("#alert");
  if (!problem) {
    show(box, false);
    return;
  }
  box.textContent = problem instanceof ApiError ? problem.describe() : problem.message || String(problem);
  show(box);
}

const api = new Api(base, token.get, () => signOut("The service refused the token: enter a valid one."));
const views = {
  run: new RunView(api, alert),
  sessions: new SessionsView(api, alert, (session) => { go("run"); views.run.continueSession(session); }),
  usage: new UsageView(api, alert),
};

function go(name) {
  alert(null);
  for (const button of document.querySelectorAll("#nav button")) {
    if (button.dataset.view === name) button.setAttribute("aria-current", "page");
    else button.removeAttribute("aria-current");
  }
  for (const view of Object.keys(views)) show($(`#view-${view}`), view === name);
  $(`#view-${name} h2`).focus();
  if (name === "run") views.run.refreshRuns();
  else views[name].refresh();
}

function signedIn(yes) {
  show($("#login"), !yes);
  show($("#nav"), yes);
  show($("#sign-out"), yes);
  if (!yes) {
    for (const view of Object.keys(views)) show($(`#view-${view}`), false);
    $("#token").focus();
  }
}

function signOut(message) {
  token.forget();
  signedIn(false);
  if (message) alert(message);
}

$("#login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const field = $("#token");
  const value = field.value.trim();
  field.value = ""; // the token lives in sessionStorage only
  if (!value) return;
  token.set(value);
  try {
    await api.get("v1/runs", { limit: 1 }); // checks the token
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 401) signOut(error);
    return;
  }
  signedIn(true);
  start();
});

$("#sign-out").addEventListener("click", () => signOut());
for (const button of document.querySelectorAll("#nav button")) {
  button.addEventListener("click", () => go(button.dataset.view));
}

/** The first view: the run the address names (#run/ID), if any. */
function start() {
  go("run");
  const named = /^#run\/(.+)$/.exec(location.hash);
  if (named) views.run.open(decodeURIComponent(named[1]));
}

if (token.get()) {
  signedIn(true);
  start();
} else {
  signedIn(false);
}
