// The dashboard: services with their buttons, providers, devices, configuration, a log tail and the
// current turn, live from the daemon's event stream.

import { getJson, postJson } from "./api";
import { follow, type StreamEvent } from "./sse";
import type { DaemonEvent, Overview, Provider, Service, Setting } from "./types";
import { byId, bytes, clearError, clock, duration, el, fillRows, percent, showError } from "./ui";

const POLL_MS = 2000;
const LOG_LINES = 300;
const EVENTS_SHOWN = 30;

export function startDashboard(signal: AbortSignal): void {
  const services = new ServiceTable(byId<HTMLTableElement>("services"));
  const logs = new LogTail(byId<HTMLSelectElement>("log-service"), byId("log-tail"), signal);
  const live = new LiveTurn(byId("turn-live"));
  const refresh = async (): Promise<void> => {
    try {
      const overview = await getJson<Overview>("/api/overview");
      clearError("overview");
      document.body.classList.remove("stale");
      showDaemon(overview);
      services.show(overview.services);
      showProviders(overview.providers);
      showDevices(overview);
      logs.offer(overview.services);
    } catch (err) {
      showError("overview", err);
      document.body.classList.add("stale"); // what is shown is the last that was known
      byId("daemon").textContent = "";
    }
  };
  void refresh();
  const timer = setInterval(() => void refresh(), POLL_MS);
  signal.addEventListener("abort", () => clearInterval(timer));
  void showConfig();
  follow(
    "/api/events",
    (event) => {
      if (event.event !== "daemon") return;
      const data = event.data as DaemonEvent;
      live.offer(data);
      showEvent(data);
    },
    (err) => (err ? showError("events", err) : clearError("events")),
    signal,
  );
}

function showDaemon(overview: Overview): void {
  const { version, pid, uptime_s } = overview.daemon;
  byId("daemon").textContent = `daemon ${version} · pid ${pid} · up ${duration(uptime_s)}`;
}

class ServiceTable {
  private readonly rows = new Map<string, HTMLTableRowElement>();

  constructor(private readonly table: HTMLTableElement) {}

  show(services: Service[]): void {
    const body = this.table.tBodies[0] ?? this.table.createTBody();
    const names = new Set(services.map((s) => s.name));
    for (const [name, row] of this.rows) {
      if (!names.has(name)) {
        row.remove();
        this.rows.delete(name);
      }
    }
    for (const service of services) {
      let row = this.rows.get(service.name);
      if (!row) {
        row = this.newRow(service.name);
        this.rows.set(service.name, row);
      }
      body.append(row); // keeps the daemon's order
      if (!row.classList.contains("busy")) fillService(row, service); // the action's answer fills it
    }
  }

  private newRow(name: string): HTMLTableRowElement {
    const cell = (cls: string): HTMLTableCellElement => el("td", { class: cls });
    const buttons = (["start", "stop", "restart"] as const).map((action) => {
      const button = el("button", { type: "button", "data-action": action }, action);
      button.addEventListener("click", () => void this.act(name, action, row));
      return button;
    });
    const row = el(
      "tr",
      { "data-service": name },
      el("td", { class: "name" }, name),
      cell("state"),
      cell("pid"),
      cell("uptime"),
      cell("restarts"),
      cell("cpu"),
      cell("memory"),
      cell("url"),
      el("td", { class: "actions" }, ...buttons),
    );
    return row;
  }

  private async act(name: string, action: string, row: HTMLTableRowElement): Promise<void> {
    const buttons = row.querySelectorAll("button");
    buttons.forEach((b) => (b.disabled = true));
    row.classList.add("busy");
    setText(row, ".state", action === "stop" ? "stopping…" : "starting…");
    clearError("action");
    try {
      const answer = await postJson<{ service: Service }>(`/api/services/${encodeURIComponent(name)}/${action}`);
      fillService(row, answer.service);
    } catch (err) {
      showError("action", err);
    } finally {
      row.classList.remove("busy");
      buttons.forEach((b) => (b.disabled = false));
    }
  }
}

function setText(row: HTMLElement, selector: string, text: string): void {
  const node = row.querySelector(selector);
  if (node) node.textContent = text;
}

function fillService(row: HTMLTableRowElement, s: Service): void {
  row.dataset["state"] = s.state.toLowerCase();
  setText(row, ".state", s.state.toLowerCase() + (s.autostart ? " · autostart" : ""));
  setText(row, ".pid", s.pid ? String(s.pid) : "–");
  setText(row, ".uptime", duration(s.uptime_s));
  setText(row, ".restarts", String(s.restarts));
  setText(row, ".cpu", percent(s.cpu_percent));
  setText(row, ".memory", bytes(s.memory_bytes));
  setText(row, ".url", s.error ? s.error : s.url);
  row.querySelector(".url")?.classList.toggle("bad", Boolean(s.error));
}

function showProviders(providers: Provider[]): void {
  const rows = providers.map((p) =>
    el(
      "tr",
      { "data-provider": `${p.kind}/${p.name}`, class: p.healthy ? "" : "bad" },
      el("td", {}, p.kind.toUpperCase()),
      el("td", {}, p.name),
      el("td", {}, p.url),
      el("td", { class: "health" }, p.healthy ? "healthy" : "unhealthy"),
      el("td", { class: "breaker" }, p.breaker.replace("_", " ")),
      el("td", { class: "latency" }, p.latency_ms === null ? "–" : `${Math.round(p.latency_ms)} ms`),
      el("td", { class: "last-error" }, p.last_error || ""),
    ),
  );
  fillRows(byId<HTMLTableElement>("providers"), rows, "no speech endpoints are configured");
}

function showDevices(overview: Overview): void {
  const { inputs, outputs, input_error, output_error } = overview.devices;
  const list = (title: string, devices: typeof inputs, error: string): HTMLElement =>
    el(
      "div",
      { class: "device-list" },
      el("h3", {}, title),
      error ? el("p", { class: "bad" }, error) : null,
      el(
        "ul",
        {},
        ...devices.map((d) =>
          el("li", { "data-device": String(d.index) }, d.name, d.default ? el("span", { class: "tag" }, "default") : null),
        ),
      ),
    );
  byId("devices").replaceChildren(list("Microphones", inputs, input_error), list("Speakers", outputs, output_error));
}

async function showConfig(): Promise<void> {
  try {
    const { settings } = await getJson<{ settings: Setting[] }>("/api/config");
    const rows = settings.map((s) =>
      el(
        "tr",
        { "data-key": s.key },
        el("td", { class: "key" }, s.key),
        el("td", { class: s.secret ? "value secret" : "value" }, s.value),
        el("td", { class: "origin" }, s.origin),
      ),
    );
    fillRows(byId<HTMLTableElement>("config"), rows, "no settings");
    clearError("config");
  } catch (err) {
    showError("config", err);
  }
}

function showEvent(event: DaemonEvent): void {
  const list = byId("events");
  const item = el(
    "li",
    { class: `level-${event.level}` },
    el("time", {}, clock(event.time)),
    " ",
    el("strong", {}, event.kind),
    " ",
    event.message,
  );
  list.prepend(item);
  while (list.children.length > EVENTS_SHOWN) list.lastElementChild?.remove();
}

/** #turn-live: the stage and transcript of the turn going on now. */
class LiveTurn {
  private turnId = "";

  constructor(private readonly box: HTMLElement) {}

  offer(event: DaemonEvent): void {
    const f = event.fields;
    if (event.kind === "conversation.stage") {
      const turnId = String(f["turn_id"] ?? "");
      const stage = String(f["stage"] ?? "");
      if (turnId !== this.turnId) this.begin(turnId);
      setText(this.box, ".stage", stage.replace("_", " "));
      this.box.dataset["stage"] = stage;
      if (typeof f["text"] === "string" && f["text"]) setText(this.box, ".transcript", f["text"]);
      if (typeof f["message"] === "string" && f["message"]) setText(this.box, ".message", f["message"]);
      this.box.querySelector(".stages")?.append(el("li", {}, el("time", {}, clock(event.time)), " ", stage));
    } else if (event.kind === "conversation.turn") {
      if (typeof f["text"] === "string" && f["text"]) setText(this.box, ".transcript", f["text"]);
      this.box.dataset["stage"] = "done";
      setText(this.box, ".stage", "done");
    }
  }

  private begin(turnId: string): void {
    this.turnId = turnId;
    setText(this.box, ".turn-id", turnId ? `turn ${turnId}` : "");
    setText(this.box, ".message", "");
    setText(this.box, ".transcript", "");
    this.box.querySelector(".stages")?.replaceChildren();
  }
}

/** #log-tail: the last lines of one service's log, followed live. */
class LogTail {
  private following = "";
  private stream: AbortController | null = null;

  constructor(
    private readonly select: HTMLSelectElement,
    private readonly pre: HTMLElement,
    private readonly signal: AbortSignal,
  ) {
    select.addEventListener("change", () => this.follow(select.value));
  }

  offer(services: Service[]): void {
    const names = services.map((s) => s.name);
    const have = [...this.select.options].map((o) => o.value);
    if (names.join("\n") !== have.join("\n")) {
      this.select.replaceChildren(...names.map((n) => el("option", { value: n }, n)));
      if (this.following && names.includes(this.following)) this.select.value = this.following;
    }
    if (!this.following || !names.includes(this.following)) {
      const first = services.find((s) => s.state.toLowerCase() === "running") ?? services[0];
      if (first) this.follow(first.name);
    }
  }

  private follow(name: string): void {
    this.stream?.abort();
    this.following = name;
    this.select.value = name;
    this.pre.textContent = "";
    const stream = new AbortController();
    this.stream = stream;
    this.signal.addEventListener("abort", () => stream.abort());
    follow(
      `/api/services/${encodeURIComponent(name)}/logs?lines=100`,
      (event: StreamEvent) => {
        if (event.event !== "log") return;
        const line = (event.data as { line?: string }).line ?? "";
        this.pre.append(line + "\n");
        while (this.pre.childNodes.length > LOG_LINES) this.pre.firstChild?.remove();
        this.pre.scrollTop = this.pre.scrollHeight;
      },
      (err) => (err ? showError("logs", err) : clearError("logs")),
      stream.signal,
      () => (this.pre.textContent = ""), // a stream that starts again sends its last lines again
    );
  }
}
