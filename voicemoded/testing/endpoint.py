"""A loopback OpenAI-compatible speech endpoint that answers at once: a daemon's stages without models."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from voicemoded.testing.sounds import riff, tone

RATE = 24_000
"""The endpoint's speech: 16-bit mono at 24 kHz, as OpenAI's ``pcm`` format."""


class SpeechEndpoint:
    """A real OpenAI-compatible STT/TTS server on 127.0.0.1 that answers at once with fixed audio/text.

    For tests about the daemon itself (fuzzing, load, leaks): a turn goes through every daemon stage
    (TTS download, decoding, playback, recording, STT upload) without the cost of real models.
    ``tone_seconds`` of a 440 Hz tone is the speech; every transcription is ``text``.
    """

    def __init__(self, text: str = "hello from the test endpoint", tone_seconds: float = 0.3) -> None:
        self._audio: dict[str, bytes] = {}
        self.set_tone(tone_seconds)
        audio = self._audio
        self.requests: list[str] = []
        requests = self.requests

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _send(self, code: int, body: bytes, kind: str = "application/json") -> None:
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                requests.append(f"GET {self.path}")
                if self.path.rstrip("/").endswith("/models"):
                    models = [{"id": m, "object": "model"} for m in ("tts-1", "whisper-1")]
                    self._send(200, json.dumps({"object": "list", "data": models}).encode())
                elif self.path.endswith("/audio/voices"):
                    self._send(200, json.dumps({"voices": ["alloy", "nova"]}).encode())
                elif self.path.endswith("/health"):
                    self._send(200, b'{"status":"ok"}')
                else:
                    self._send(404, b'{"error":"not found"}')

            def do_POST(self) -> None:
                requests.append(f"POST {self.path}")
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if self.path.endswith("/audio/speech"):
                    try:
                        fmt = str(json.loads(body or b"{}").get("response_format", "wav"))
                    except ValueError:
                        fmt = "wav"
                    kind = "pcm" if fmt == "pcm" else "wav"
                    self._send(200, audio[kind], f"audio/{kind}")
                elif self.path.endswith("/audio/transcriptions"):
                    self._send(200, json.dumps({"text": text}).encode())
                else:
                    self._send(404, b'{"error":"not found"}')

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def set_tone(self, seconds: float) -> None:
        """Make every later answer ``seconds`` of a 440 Hz tone (24 kHz mono, as PCM or WAV)."""
        pcm = tone(seconds, RATE)
        self._audio.update(pcm=pcm, wav=riff(pcm, RATE))

    def env(self) -> dict[str, str]:
        """The daemon settings that make this server its only STT and TTS endpoint."""
        return {"VOICEMODE_TTS_BASE_URLS": self.url, "VOICEMODE_STT_BASE_URLS": self.url}

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
