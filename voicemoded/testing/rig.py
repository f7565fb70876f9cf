"""A private PulseAudio server with two null sinks: virtual audio for machines without a sound card.

The demo brings it up when :func:`has_sound_card` says there is nothing real to talk through (a
container, a CI runner, a headless box), and the tests and benchmarks use it as their rig: ``speaker``
is the default sink (its ``.monitor`` records what was played) and ``mic`` is a sink whose monitor is
the default source (what is played into ``mic`` is what the microphone hears).

Two details make it usable for latency work: ``norewinds=1`` on every null sink (without it the first
0.15-1.7 s of a recording is lost and playback drains seconds late), and a 20 ms ``parec`` attached to
each sink's monitor, which makes the null sink tick in small blocks instead of handing audio over in
blocks of up to 2 s.

PortAudio reads ``PULSE_SERVER`` and the ALSA configuration when ``pyaudio.PyAudio()`` initialises, so
:meth:`VirtualAudioRig.apply_env` must run before the process's first PyAudio instance.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

import psutil
import structlog

from voicemoded.api.errors import FailedPrecondition, Unavailable
from voicemoded.audio.format import SPEECH_FORMAT, AudioFormat

log = structlog.get_logger(__name__)

SPEAKER_SINK = "speaker"
MIC_SINK = "mic"
PLAYER_BUFFER_MS = 500
"""Audio the scripted person's player keeps queued in the server (see :meth:`play_into_mic`)."""

# ALSA names PyAudio lists: one per pulse device, so selection by name works on the rig as on a laptop.
_ALSA_CONF = """\
pcm.!default {{ type pulse hint {{ show on description "PulseAudio default device" }} }}
ctl.!default {{ type pulse }}
pcm.{speaker} {{ type pulse device "{speaker}" hint {{ show on description "virtual speaker" }} }}
pcm.{speaker}_monitor {{ type pulse device "{speaker}.monitor" hint {{ show on description "monitor" }} }}
pcm.{mic}_sink {{ type pulse device "{mic}" hint {{ show on description "what the microphone will hear" }} }}
pcm.{mic} {{ type pulse device "{mic}.monitor" hint {{ show on description "virtual microphone" }} }}
"""


def has_sound_card(proc_asound: Path = Path("/proc/asound/cards")) -> bool:
    """True when the kernel knows a sound card or a sound server is already reachable.

    A reachable PulseAudio/PipeWire server counts: on a desktop the user's server owns the real
    devices even when ``/proc/asound`` is hidden (flatpak, containers with a forwarded socket).
    """
    try:
        text = proc_asound.read_text()
    except OSError:
        text = ""
    if text.strip() and "no soundcards" not in text:
        return True
    server = os.environ.get("PULSE_SERVER", "")
    if server.startswith("unix:") and Path(server[5:]).exists():
        return True
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    return bool(runtime) and (Path(runtime) / "pulse" / "native").exists()


class VirtualAudioRig:
    """Starts, describes and stops one private PulseAudio server; use as a (sync or async) context manager."""

    def __init__(self, base_dir: Path | None = None, *, start_timeout: float = 10.0) -> None:
        self._owns_dir = base_dir is None
        self.dir = Path(base_dir) if base_dir else Path(tempfile.mkdtemp(prefix="voicemode-pulse-"))
        self.socket = self.dir / "pulse.sock"
        self.alsa_conf = self.dir / "asound.conf"
        self.home = self.dir / "home"
        self._start_timeout = start_timeout
        self.pid: int | None = None
        self._tickers: list[subprocess.Popen[bytes]] = []
        self._saved_env: dict[str, str | None] = {}

    # lifecycle -----------------------------------------------------------------------------------

    @property
    def server(self) -> str:
        return f"unix:{self.socket}"

    @property
    def env(self) -> dict[str, str]:
        """Variables a child process (or this one, before PyAudio starts) needs to use the rig."""
        return {
            "PULSE_SERVER": self.server,
            "ALSA_CONFIG_PATH": str(self.alsa_conf),
            "JACK_NO_START_SERVER": "1",
            # PulseAudio clients write a cookie under $HOME/.config/pulse; keep it out of the user's home.
            "PULSE_COOKIE": str(self.dir / "cookie"),
        }

    def start(self) -> VirtualAudioRig:
        if shutil.which("pulseaudio") is None or shutil.which("pactl") is None:
            raise FailedPrecondition(
                "no virtual audio: pulseaudio is not installed",
                hint="install the pulseaudio and pulseaudio-utils packages, or connect a sound card",
            )
        self.dir.mkdir(parents=True, exist_ok=True)
        self.home.mkdir(exist_ok=True)
        self.alsa_conf.write_text(_ALSA_CONF.format(speaker=SPEAKER_SINK, mic=MIC_SINK))
        env = self._child_env()
        cmd = [
            "pulseaudio", "--daemonize=yes", "-n", "--exit-idle-time=-1", "--use-pid-file=no",
            "--disallow-exit", "--log-target=stderr",
            f"--load=module-native-protocol-unix socket={self.socket} auth-anonymous=1",
            f"--load=module-null-sink sink_name={SPEAKER_SINK} norewinds=1",
            f"--load=module-null-sink sink_name={MIC_SINK} norewinds=1",
        ]  # fmt: skip
        # --daemonize=yes returns once the server is ready, which is the readiness signal we want.
        done = subprocess.run(cmd, env=env, capture_output=True, timeout=self._start_timeout, check=False)
        if done.returncode != 0:
            raise Unavailable(
                "virtual audio server did not start",
                hint=done.stderr.decode(errors="replace").strip()[-300:],
            )
        self.pid = self._find_pid()
        self._pactl("set-default-sink", SPEAKER_SINK)
        self._pactl("set-default-source", f"{MIC_SINK}.monitor")
        for sink in (SPEAKER_SINK, MIC_SINK):
            self._tickers.append(
                subprocess.Popen(
                    ["parec", "--latency-msec=20", "--raw", "-d", f"{sink}.monitor"],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        log.info("virtual_audio.started", pid=self.pid, socket=str(self.socket))
        return self

    def stop(self) -> None:
        self._stop_server()
        self.restore_env()
        if self._owns_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def restart(self) -> None:
        """Kill and restart the server on the same socket, as a desktop sound server restart does.

        Streams open on the old server break; clients must reconnect by themselves.
        """
        self._stop_server()
        self.start()

    def _stop_server(self) -> None:
        for ticker in self._tickers:
            ticker.terminate()
        for ticker in self._tickers:
            try:
                ticker.wait(timeout=2)
            except subprocess.TimeoutExpired:
                ticker.kill()
        self._tickers.clear()
        if self.pid is not None:
            try:
                proc = psutil.Process(self.pid)
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=3)
            except psutil.TimeoutExpired:
                psutil.Process(self.pid).kill()
            except psutil.NoSuchProcess:
                pass
            log.info("virtual_audio.stopped", pid=self.pid)
            self.pid = None

    def apply_env(self) -> None:
        """Point this process at the rig (call before the first ``pyaudio.PyAudio()``)."""
        for key, value in self.env.items():
            self._saved_env.setdefault(key, os.environ.get(key))
            os.environ[key] = value

    def restore_env(self) -> None:
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env.clear()

    def __enter__(self) -> VirtualAudioRig:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> VirtualAudioRig:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)

    # the scripted person and the ear ---------------------------------------------------------------

    async def play_into_mic(self, pcm: bytes, fmt: AudioFormat) -> None:
        """Say ``pcm`` into the virtual microphone; returns when the last sample has been handed over.

        The player keeps ``PLAYER_BUFFER_MS`` of audio queued in the sound server, so a player that is not
        scheduled for a while (a busy or shared machine) does not run dry: with 20 ms queued, a 0.2 s
        stall put 0.2 s of silence into what the microphone heard, and a 0.8 s pause became 1.0 s. A
        person's voice does not stop when the computer is busy. The first sample is heard as soon.
        """
        proc = await asyncio.create_subprocess_exec(
            "pacat", "--raw", f"--latency-msec={PLAYER_BUFFER_MS}", f"--rate={fmt.rate}", f"--channels={fmt.channels}",
            f"--format=s{fmt.width * 8}le", "-d", MIC_SINK,
            stdin=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
            env=self._child_env(),
        )  # fmt: skip
        assert proc.stdin is not None
        try:
            proc.stdin.write(pcm)
            await proc.stdin.drain()
            proc.stdin.close()
            await proc.wait()
        except asyncio.CancelledError:
            proc.kill()
            await proc.wait()
            raise

    def record_speaker(self, fmt: AudioFormat = SPEECH_FORMAT) -> MonitorRecording:
        """Start recording what the speaker plays; ``stop()`` the result to get the PCM."""
        return MonitorRecording(self._child_env(), fmt, SPEAKER_SINK)

    def record_mic(self, fmt: AudioFormat = SPEECH_FORMAT) -> MonitorRecording:
        """Start recording what the microphone hears (what the daemon gets from the default source)."""
        return MonitorRecording(self._child_env(), fmt, MIC_SINK)

    # internals ------------------------------------------------------------------------------------

    def _child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.env)
        env["HOME"] = str(self.home)
        return env

    def _pactl(self, *args: str) -> None:
        subprocess.run(["pactl", *args], env=self._child_env(), check=True, capture_output=True, timeout=5)

    def _find_pid(self) -> int:
        """The daemonised server's pid, found by its own socket path (ours alone), not by its name."""
        needle = str(self.socket)
        deadline = time.monotonic() + self._start_timeout
        while time.monotonic() < deadline:
            for proc in psutil.process_iter(["pid", "cmdline"]):
                cmdline = proc.info.get("cmdline") or []
                if any(needle in part for part in cmdline) and cmdline[0].endswith("pulseaudio"):
                    return int(proc.info["pid"])
            time.sleep(0.01)
        raise Unavailable("virtual audio server started but its process was not found")


class MonitorRecording:
    """A ``parec`` on a sink's monitor: what the speaker played, as the person would have heard it, or
    what the microphone heard."""

    def __init__(self, env: Mapping[str, str], fmt: AudioFormat, sink: str) -> None:
        self.format = fmt
        self.started_at = time.monotonic()
        self._proc = subprocess.Popen(
            ["parec", "--raw", "--latency-msec=20", f"--rate={fmt.rate}", f"--channels={fmt.channels}",
             f"--format=s{fmt.width * 8}le", "-d", f"{sink}.monitor"],
            env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self._buf = bytearray()
        # A reader thread keeps the pipe empty: a full pipe would stall parec and PulseAudio would drop audio.
        self._reader = threading.Thread(target=self._read, name=f"{sink}-recording", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        while block := os.read(self._proc.stdout.fileno(), 65536):
            self._buf += block

    def stop(self) -> bytes:
        """Stop recording and return everything captured since the start."""
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGINT)
        self._proc.wait(timeout=5)
        self._reader.join(timeout=5)
        out = bytes(self._buf)
        return out[: len(out) - len(out) % self.format.frame_bytes]

    def __enter__(self) -> MonitorRecording:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
