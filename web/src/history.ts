// History: the recent turns with their timings and recordings, and a plot of their latencies.

import { getJson, request } from "./api";
import { follow } from "./sse";
import type { DaemonEvent, HistoryTurn } from "./types";
import { byId, clearError, clock, el, fillRows, seconds, showError } from "./ui";
import { drawLatency } from "./plot";

const RECENT = 20;

export function startHistory(signal: AbortSignal): void {
  const recordings = new Recordings(signal);
  let loading = false;
  const load = async (): Promise<void> => {
    if (loading) return;
    loading = true;
    try {
      const { turns } = await getJson<{ turns: HistoryTurn[] }>(`/api/history?recent=${RECENT}`);
      clearError("history");
      showTurns(turns, recordings);
      drawLatency(byId("latency-plot") as unknown as SVGSVGElement, [...turns].reverse());
    } catch (err) {
      showError("history", err);
    } finally {
      loading = false;
    }
  };
  void load();
  // A turn that finishes while the page is open appears without a reload.
  follow(
    "/api/events",
    (event) => {
      if (event.event === "daemon" && (event.data as DaemonEvent).kind === "conversation.turn") void load();
    },
    (err) => (err ? showError("events", err) : clearError("events")),
    signal,
  );
}

function showTurns(turns: HistoryTurn[], recordings: Recordings): void {
  const rows = turns.map((turn) => {
    const t = turn.timings;
    const heard = turn.error ? el("span", { class: "bad" }, turn.error) : turn.text;
    return el(
      "tr",
      { "data-turn": turn.turn_id },
      el("td", { class: "time" }, clock(turn.time)),
      el("td", { class: "message" }, turn.message),
      el("td", { class: "text" }, heard),
      el("td", { class: "end" }, turn.end_reason),
      el("td", { class: "num" }, seconds(t.time_to_first_audio)),
      el("td", { class: "num" }, seconds(t.last_voiced_to_text)),
      el("td", { class: "num" }, seconds(t.total)),
      el("td", { class: "recording" }, turn.recording ? recordings.player(turn.turn_id) : "–"),
    );
  });
  fillRows(byId<HTMLTableElement>("history"), rows, "no turns yet");
}

/** Recordings fetched with the token (an `<audio src>` could not send it), one at a time, kept. */
class Recordings {
  private readonly urls = new Map<string, Promise<string>>();
  private queue: Promise<unknown> = Promise.resolve();

  constructor(signal: AbortSignal) {
    signal.addEventListener("abort", () => {
      for (const url of this.urls.values()) void url.then(URL.revokeObjectURL, () => undefined);
    });
  }

  player(turnId: string): HTMLAudioElement {
    const audio = el("audio", { controls: "", preload: "auto" });
    this.url(turnId).then(
      (url) => (audio.src = url),
      (err: unknown) => audio.replaceWith(el("span", { class: "bad" }, describeShort(err))),
    );
    return audio;
  }

  private url(turnId: string): Promise<string> {
    let url = this.urls.get(turnId);
    if (!url) {
      url = this.queue.then(async () => {
        const response = await request(`/api/recordings/${encodeURIComponent(turnId)}`);
        return URL.createObjectURL(await response.blob());
      });
      this.queue = url.catch(() => undefined);
      this.urls.set(turnId, url);
      url.catch(() => this.urls.delete(turnId)); // the next load tries again
    }
    return url;
  }
}

function describeShort(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
