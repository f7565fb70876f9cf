// Talk: one button joins the LiveKit room from the browser, the daemon speaks into it, listens to the
// person's answer through it, and the page shows what it heard.

import { Room, RoomEvent, Track, type RemoteTrack } from "livekit-client";

import { ApiError, type ErrorBody, getJson, postJson } from "./api";
import { readEvents } from "./sse";
import type { Overview, TalkAccess, TurnResult } from "./types";
import { byId, clearError, el, seconds, showError } from "./ui";

const ROOM = "voicemode-web";
const VOICED_RMS = 0.02;
const METER_MS = 50;

/** What each of the daemon's turn events means for the person. */
const STAGE_WORDS: Record<string, string> = {
  tts_start: "The assistant is about to speak…",
  first_audio: "The assistant is speaking.",
  playback_end: "The assistant has finished speaking.",
  listening: "Listening: answer now.",
  speech_start: "Hearing you…",
  speech_end: "Got it, transcribing…",
  transcript: "Transcribed.",
};

export function startTalk(signal: AbortSignal): void {
  const button = byId<HTMLButtonElement>("talk-button");
  let turn: AbortController | null = null;
  button.addEventListener("click", () => {
    if (turn) {
      turn.abort(); // hanging up cancels the daemon's turn
      return;
    }
    turn = new AbortController();
    signal.addEventListener("abort", () => turn?.abort());
    button.textContent = "Stop";
    void talk(turn.signal).finally(() => {
      turn = null;
      button.textContent = "Talk";
    });
  });
  void checkLiveKit();
}

/** Says before the first press when there is no LiveKit server to talk through. */
async function checkLiveKit(): Promise<void> {
  try {
    const { livekit } = await getJson<Overview>("/api/overview");
    if (livekit.running) {
      status(`Ready: the room is on ${livekit.url}.`);
      return;
    }
    const message = livekit.configured ? "the LiveKit server is not running" : "no LiveKit server is configured";
    const hint = livekit.hint || "voicemodectl service install livekit, then voicemodectl service start livekit";
    status(`${message}: ${hint}`);
    showError("livekit", new ApiError({ code: "livekit_unavailable", message, hint }, 503));
  } catch (err) {
    showError("livekit", err);
  }
}

function status(text: string): void {
  byId("talk-status").textContent = text;
}

async function talk(signal: AbortSignal): Promise<void> {
  const transcript = byId("talk-transcript");
  transcript.textContent = "";
  transcript.dataset["state"] = "waiting";
  clearError("livekit");
  clearError("talk");
  const room = new Room({ adaptiveStream: false, dynacast: false });
  const meter = new Meter(byId("talk-audio"));
  try {
    status("Asking for the microphone…");
    await microphoneAllowed();
    status("Joining the room…");
    const access = await postJson<TalkAccess>("/api/talk", {});
    room.on(RoomEvent.TrackSubscribed, (track: RemoteTrack) => {
      if (track.kind === Track.Kind.Audio) meter.hear(track);
    });
    await room.connect(access.url, access.token, { autoSubscribe: true });
    await room.startAudio();
    status("In the room; the assistant is getting ready…");
    const message = byId<HTMLInputElement>("talk-message").value.trim() || "What shall we talk about?";
    const result = await converse(room, access.room || ROOM, message, signal);
    transcript.dataset["state"] = "done";
    transcript.textContent = result.text || `(nothing heard: ${result.end_reason.replace("_", " ")})`;
    status(`${finished(result)} Press Talk for another turn.`);
  } catch (err) {
    transcript.dataset["state"] = "failed";
    if (signal.aborted) {
      status("Stopped.");
    } else {
      status("The turn did not finish: see the message above.");
      showError("talk", err);
    }
  } finally {
    meter.close();
    // Stopped: the daemon ends its turn as cancelled once the hang-up reaches it; leaving the room at
    // once could reach it first and end the turn as "person left" instead. Wait (a little) for the
    // assistant to leave.
    if (signal.aborted) await assistantGone(room, 3000);
    await room.disconnect();
  }
}

function assistantGone(room: Room, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      room.off(RoomEvent.ParticipantDisconnected, check);
      clearTimeout(timer);
      resolve();
    };
    const check = (): void => {
      if (room.remoteParticipants.size === 0) done();
    };
    const timer = setTimeout(done, timeoutMs);
    room.on(RoomEvent.ParticipantDisconnected, check);
    check();
  });
}

function finished(result: TurnResult): string {
  const t = result.timings;
  const parts = [`Done: the turn ended by ${result.end_reason.replace("_", " ")}`];
  if (typeof t.time_to_first_audio === "number") parts.push(`first audio after ${seconds(t.time_to_first_audio)}`);
  if (typeof t.last_voiced_to_text === "number") parts.push(`transcript ${seconds(t.last_voiced_to_text)} after your last word`);
  return parts.join("; ") + ".";
}

/** Asks for the microphone while the press still counts as the person's gesture, so a prompt appears
 * now and not halfway through the turn. The track is stopped again: the turn opens its own. */
async function microphoneAllowed(): Promise<void> {
  if (!navigator.mediaDevices?.getUserMedia) {
    throw new Error("this browser gives microphones only to https pages and to localhost: open the page on 127.0.0.1");
  }
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    stream.getTracks().forEach((t) => t.stop());
  } catch (err) {
    const name = err instanceof DOMException ? err.name : "";
    if (name === "NotAllowedError") throw new Error("the browser did not allow the microphone: allow it for this page and press Talk again");
    if (name === "NotFoundError") throw new Error("this computer has no microphone the browser can use");
    throw err;
  }
}

/** One turn through the room; the person's microphone is published when the daemon starts listening,
 * so the assistant never hears its own voice come back. */
async function converse(room: Room, roomName: string, message: string, signal: AbortSignal): Promise<TurnResult> {
  const body = JSON.stringify({ room: roomName, message, transport: "livekit" });
  const init = { method: "POST", body, headers: { "Content-Type": "application/json" }, signal };
  for await (const event of readEvents("/api/converse", init)) {
    const data = event.data as Record<string, unknown>;
    if (event.event === "turn") {
      const kind = String(data["kind"] ?? "");
      if (STAGE_WORDS[kind]) status(STAGE_WORDS[kind]);
      if (kind === "listening") {
        await room.localParticipant.setMicrophoneEnabled(true, {
          echoCancellation: true,
          noiseSuppression: true,
          autoGainControl: true,
        });
      }
      if (kind === "transcript" && typeof data["detail"] === "string") byId("talk-transcript").title = data["detail"];
    } else if (event.event === "result") {
      return data as unknown as TurnResult;
    } else if (event.event === "error") {
      throw new ApiError(data as unknown as ErrorBody, 0);
    }
  }
  throw new Error("the door ended the turn's stream without a result");
}

/** Plays the assistant's track and measures it: the meter moves and `data-heard` counts the seconds
 * of voice that reached this page. */
class Meter {
  private readonly context = new AudioContext();
  private timer = 0;
  private heard = 0;
  private readonly meter: HTMLMeterElement;

  constructor(private readonly box: HTMLElement) {
    this.meter = el("meter", { min: "0", max: "0.3", value: "0", "aria-label": "the assistant's voice" });
    box.replaceChildren(el("span", { class: "muted" }, "assistant "), this.meter);
    box.dataset["heard"] = "0";
  }

  hear(track: RemoteTrack): void {
    const player = track.attach();
    this.box.append(player);
    if (!track.mediaStreamTrack) return;
    void this.context.resume();
    const analyser = this.context.createAnalyser();
    analyser.fftSize = 2048;
    this.context.createMediaStreamSource(new MediaStream([track.mediaStreamTrack])).connect(analyser);
    const samples = new Float32Array(analyser.fftSize);
    this.timer = window.setInterval(() => {
      analyser.getFloatTimeDomainData(samples);
      let sum = 0;
      for (const s of samples) sum += s * s;
      const rms = Math.sqrt(sum / samples.length);
      this.meter.value = rms;
      if (rms > VOICED_RMS) {
        this.heard += METER_MS / 1000;
        this.box.dataset["heard"] = this.heard.toFixed(2);
      }
    }, METER_MS);
  }

  close(): void {
    clearInterval(this.timer);
    void this.context.close();
  }
}
