// The JSON the web door answers with (its contract), as the page reads it.

export interface Service {
  name: string;
  state: string;
  pid: number | null;
  uptime_s: number | null;
  restarts: number;
  cpu_percent: number | null;
  memory_bytes: number | null;
  url: string;
  error: string;
  autostart: boolean;
}

export interface Provider {
  kind: "tts" | "stt";
  name: string;
  url: string;
  healthy: boolean;
  breaker: "closed" | "open" | "half_open";
  latency_ms: number | null;
  last_error: string;
}

export interface Device {
  index: number;
  name: string;
  default: boolean;
}

export interface LiveKitState {
  configured: boolean;
  running: boolean;
  url: string;
  hint: string;
}

export interface Overview {
  daemon: { version: string; pid: number; uptime_s: number };
  services: Service[];
  providers: Provider[];
  devices: { inputs: Device[]; outputs: Device[]; input_error: string; output_error: string };
  livekit: LiveKitState;
}

export interface Setting {
  key: string;
  value: string;
  origin: string;
  secret: boolean;
}

export interface DaemonEvent {
  seq: number;
  time: string | number;
  kind: string;
  subsystem: string;
  level: string;
  message: string;
  fields: Record<string, unknown>;
}

export interface Timings {
  time_to_first_audio?: number | null;
  last_voiced_to_text?: number | null;
  total?: number | null;
  [name: string]: number | null | undefined;
}

export interface HistoryTurn {
  turn_id: string;
  time: string | number;
  message: string;
  text: string;
  end_reason: string;
  error: string;
  recording: boolean;
  timings: Timings;
}

export interface TalkAccess {
  url: string;
  room: string;
  token: string;
  identity: string;
}

export interface TurnResult {
  text: string;
  end_reason: string;
  turn_id: string;
  timings: Timings;
}
