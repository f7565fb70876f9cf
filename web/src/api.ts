// Every request the page makes: the install's token on each one, and errors turned into words.

const TOKEN_KEY = "voicemode-token";

export interface ErrorBody {
  code: string;
  message: string;
  hint?: string;
}

/** An error the page can show: what happened and what to do next. */
export class ApiError extends Error {
  readonly code: string;
  readonly hint: string;
  readonly status: number;

  constructor(body: ErrorBody, status: number) {
    super(body.message);
    this.code = body.code;
    this.hint = body.hint ?? "";
    this.status = status;
  }

  /** The message and the hint as one sentence for a person. */
  words(): string {
    return this.hint ? `${this.message} — ${this.hint}` : this.message;
  }
}

const OPEN_WITH_TOKEN = "open the address `voicemodectl web url` prints: it carries this install's token";

/** Moves a `#token=…` fragment into session storage and out of the address bar (and the history). */
export function takeTokenFromFragment(): void {
  const match = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (match?.[1]) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
}

export function token(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

function headers(extra?: HeadersInit): Headers {
  const all = new Headers(extra);
  const value = token();
  if (value) all.set("Authorization", `Bearer ${value}`);
  return all;
}

/** `fetch` with the token; a door that does not answer and any non-2xx answer become an ApiError. */
export async function request(path: string, init: RequestInit = {}): Promise<Response> {
  let response: Response;
  try {
    response = await fetch(path, { ...init, headers: headers(init.headers), cache: "no-store" });
  } catch (err) {
    if (err instanceof DOMException && err.name === "AbortError") throw err;
    throw new ApiError(
      {
        code: "door_unreachable",
        message: "the web door is not answering",
        hint: "start it again: `voicemodectl service start web` (or run `voicemode-web`)",
      },
      0,
    );
  }
  if (!response.ok) throw await errorOf(response);
  return response;
}

async function errorOf(response: Response): Promise<ApiError> {
  let body: ErrorBody = { code: "http_" + response.status, message: `the web door answered ${response.status}` };
  try {
    const parsed: unknown = await response.json();
    const error = (parsed as { error?: unknown } | null)?.error;
    if (error && typeof error === "object" && typeof (error as ErrorBody).message === "string") {
      body = error as ErrorBody;
    }
  } catch {
    // Not JSON (a proxy's page, say): the status alone says what happened.
  }
  if (response.status === 401 && !token()) {
    body = { ...body, message: `${body.message} (this page has no token)`, hint: OPEN_WITH_TOKEN };
  } else if ((response.status === 401 || response.status === 403) && !body.hint) {
    body = { ...body, hint: OPEN_WITH_TOKEN };
  }
  return new ApiError(body, response.status);
}

export async function getJson<T>(path: string): Promise<T> {
  return (await (await request(path)).json()) as T;
}

export async function postJson<T>(path: string, body: unknown = {}): Promise<T> {
  const response = await request(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  return (await response.json()) as T;
}

/** Words for any error: an ApiError's message and hint, anything else's message, never a stack. */
export function describe(err: unknown): string {
  if (err instanceof ApiError) return err.words();
  if (err instanceof Error) return err.message || err.name;
  return String(err);
}
