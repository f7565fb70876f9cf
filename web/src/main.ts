// The page's entry: takes the token from the address, picks the view by path, starts it.

import { takeTokenFromFragment } from "./api";
import { startDashboard } from "./dashboard";
import { startHistory } from "./history";
import { showError } from "./ui";

const VIEWS: Record<string, { name: string; start: (signal: AbortSignal) => void }> = {
  "/": { name: "dashboard", start: startDashboard },
  "/history": { name: "history", start: startHistory },
  // The room's client is most of the bundle's weight: only the talk page loads it.
  "/talk": { name: "talk", start: (signal) => void import("./talk").then((m) => m.startTalk(signal)) },
};

function main(): void {
  takeTokenFromFragment();
  const path = location.pathname.replace(/\/+$/, "") || "/";
  const view = VIEWS[path] ?? VIEWS["/"]!;
  for (const section of document.querySelectorAll<HTMLElement>("main[data-view]")) {
    if (section.dataset["view"] === view.name) section.hidden = false;
    else section.remove(); // one view's ids only
  }
  for (const link of document.querySelectorAll<HTMLAnchorElement>("nav a")) {
    link.classList.toggle("current", link.dataset["nav"] === view.name);
  }
  document.title = `voicemode · ${view.name}`;
  const stop = new AbortController();
  window.addEventListener("pagehide", () => stop.abort());
  try {
    view.start(stop.signal);
  } catch (err) {
    showError("page", err);
  }
}

window.addEventListener("unhandledrejection", (event) => showError("page", event.reason));
main();
