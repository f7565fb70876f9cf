// Server-sent events read with fetch and a ReadableStream: EventSource cannot send the token header.

import { request } from "./api";

export interface StreamEvent {
  event: string;
  data: unknown;
}

/** The events of one stream until it ends or `signal` aborts it; an error before it starts is thrown. */
export async function* readEvents(
  path: string,
  init: RequestInit & { signal: AbortSignal },
  opened?: () => void,
): AsyncGenerator<StreamEvent> {
  const headers = new Headers(init.headers);
  headers.set("Accept", "text/event-stream");
  const response = await request(path, { ...init, headers });
  opened?.();
  if (!response.body) return;
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end: number;
      while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, "");
        const parsed = parseBlock(block);
        if (parsed) yield parsed;
      }
    }
  } finally {
    reader.releaseLock();
  }
}

function parseBlock(block: string): StreamEvent | null {
  let event = "message";
  const data: string[] = [];
  for (const line of block.split(/\r?\n/)) {
    if (line === "" || line.startsWith(":")) continue; // a comment: the door's keep-alive ping
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
  }
  if (data.length === 0) return null;
  const text = data.join("\n");
  try {
    return { event, data: JSON.parse(text) as unknown };
  } catch {
    return { event, data: text };
  }
}

/** Follows a stream for as long as the page lives: reconnects after a pause when it ends or fails. */
export function follow(
  path: string,
  onEvent: (event: StreamEvent) => void,
  onTrouble: (err: unknown | null) => void,
  signal: AbortSignal,
  opened?: () => void,
  retryMs = 2000,
): void {
  void (async () => {
    while (!signal.aborted) {
      try {
        const started = (): void => {
          onTrouble(null);
          opened?.();
        };
        for await (const event of readEvents(path, { signal }, started)) {
          onEvent(event);
        }
      } catch (err) {
        if (signal.aborted) return;
        onTrouble(err);
      }
      await new Promise((resolve) => setTimeout(resolve, retryMs));
    }
  })();
}
