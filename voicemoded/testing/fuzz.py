"""Request messages for every gRPC method of the daemon, generated from their protobuf descriptors.

The daemon's fuzz test and ``benchmarks/reliability.py --fuzz N`` both draw from these strategies and
call through :class:`Target`. A call must end with a status other than INTERNAL or UNKNOWN (both mean
an exception nobody turned into an error a person can act on), and the daemon must still answer.

The values are hostile (control characters, strings up to ~100 KB, negative and huge numbers, NaN,
long repeated fields) but never aimed outside the sandbox: working directories and file paths stay
under the daemon's temp folder, configuration keys that choose where audio goes or what runs (endpoint
URLs, hosts, ports, keys, program paths, autostart) are left out, and the names of real services and
models are not passed to the methods that install, remove or start them. Needs hypothesis.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import message_factory, text_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

from voicemoded.api.v1 import (
    conversation_pb2,
    conversation_pb2_grpc,
    daemon_pb2,
    daemon_pb2_grpc,
    mcp_pb2,
    mcp_pb2_grpc,
    providers_pb2,
    providers_pb2_grpc,
    rooms_pb2,
    rooms_pb2_grpc,
    services_pb2,
    services_pb2_grpc,
)
from voicemoded.config.schema import known_env_names
from voicemoded.engines.catalog import default_catalog
from voicemoded.testing.daemon import DaemonHandle, speech_daemon
from voicemoded.testing.ports import free_port
from voicemoded.testing.sounds import wav

MODULES = {
    daemon_pb2: daemon_pb2_grpc,
    services_pb2: services_pb2_grpc,
    providers_pb2: providers_pb2_grpc,
    conversation_pb2: conversation_pb2_grpc,
    mcp_pb2: mcp_pb2_grpc,
    rooms_pb2: rooms_pb2_grpc,
}
BUG_STATUSES = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
MEMORY_LIMIT = 4 * 1024**3
"""The fuzzed daemon's address space: a runaway allocation becomes an error inside it, not a dead box."""

# Keys that choose where audio and text go, what runs, or who may connect: never fuzzed.
UNSAFE_KEY = re.compile(r"URL|HOST|PORT|KEY|SECRET|PATH|_DIR|AUTOSTART|BACKEND|LIVEKIT|ENDPOINTS|UIDS|SOCKET")
SAFE_KEYS = tuple(k for k in known_env_names() if not UNSAFE_KEY.search(k))
CATALOG = default_catalog()
REAL_NAMES = {n.lower() for n in [*CATALOG.engines, *CATALOG.model_names()]} | {
    a.lower() for spec in CATALOG.models.values() for a in spec.aliases
}
# Methods that install, remove or start what they are named: real names stay out of their requests.
ACTING = {"StartService", "RestartService", "SetAutostart", "InstallService", "InstallModel", "RemoveModel"}
UNSET = object()
STREAM_ITEMS = 200
"""Items read from a server stream before the call is cancelled (WatchEvents, TailLogs follow)."""


def all_methods() -> list[MethodDescriptor]:
    """Every method of every service, checked against the generated stubs so none is missed."""
    methods = []
    for pb2, pb2_grpc in MODULES.items():
        for service in pb2.DESCRIPTOR.services_by_name.values():
            stub = getattr(pb2_grpc, f"{service.name}Stub")
            assert service.name in dir(pb2_grpc) or stub
            methods.extend(service.methods)
    return methods


METHODS = {f"{m.containing_service.name}.{m.name}": m for m in all_methods()}


# --- values --------------------------------------------------------------------------------------
CONTROL = st.text(st.characters(codec="utf-8", max_codepoint=0x1F) | st.sampled_from("\x7f\u2028\ufeff"))
ODD_TEXT = st.sampled_from(
    ["", " ", "-1", "0", "nan", "inf", "1e309", "..", "\x00", "é" * 300, "%s%n", "{}", "[", "'\"", "\\"]
)


def huge(alphabet: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(alphabet, st.integers(1_000, 100_000)).map(lambda t: t[0] * t[1])


STRINGS = st.one_of(
    st.text(max_size=40), CONTROL, ODD_TEXT, huge(st.characters(codec="utf-8")), st.text(min_size=200)
)
# Values a real caller would send, so a request gets past its first check and deeper stages are reached.
PLAUSIBLE = {
    "message": ["Hello there.", "Which file should I open first?"],
    "text": ["Hello there."],
    "voice": ["alloy", "nova", "af_sky", "en_US-joe-medium"],
    "language": ["en", "de", "xx"],
    "audio_format": ["wav", "pcm", "mp3", "opus", "flac", "aac"],
    "format": ["wav", "pcm", "mp3", "opus", "flac", "aac"],
    "model": ["tts-1", "whisper-1", "tiny.en"],
    "tts_model": ["tts-1"],
    "stt_model": ["whisper-1"],
    "kind": ["stt", "tts"],
    "provider": ["openai", "whisper", "piper", "kokoro", "http://127.0.0.1:9/v1"],
    "tts_provider": ["openai", "piper"],
    "stt_provider": ["openai", "whisper"],
    "subsystems": ["daemon", "config", "supervisor", "providers", "conversation"],
    "filename": ["a.wav", "a.mp3", "", "../x.wav"],
    "tunnel_version": ["1", ""],
}
NUMBERS: dict[str, list[Any]] = {
    "listen_duration_max": [1.0, 2.0],
    "listen_duration_min": [0.0, 0.5],
    "speed": [1.0, 1.5],
    "queue_timeout": [0.5, 1.0],
    "silence_threshold": [0.5, 1.0],
    "vad_aggressiveness": [0, 2, 3],
    "rate": [16_000, 24_000],
    "width": [2],
    "channels": [1],
    "lines": [0, 10],
    "recent": [0, 5],
    "replay": [0, 10],
    "pid": [1, os.getpid()],
}


def mostly(good: st.SearchStrategy[Any], hostile: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``good`` three times in four: one hostile field among sensible ones reaches further in."""
    return st.integers(0, 3).flatmap(lambda i: hostile if i == 3 else good)


BYTES = st.one_of(
    st.binary(max_size=64),
    st.binary(min_size=1_000, max_size=100_000),
    st.builds(
        wav,
        st.sampled_from([-1, 0, 1, 10, 100, 8_000, 16_000, 2**31 - 1]),
        st.sampled_from([0, 1, 2, 7]),
        st.sampled_from([0, 1, 2, 3, 7]),
        st.integers(0, 20_000),
    ),
    st.sampled_from([b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}\n', b"\xff\xfe", b"[" * 10_000]),
)
INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}


def ints(lo: int, hi: int) -> st.SearchStrategy[int]:
    edges = [v for v in (lo, hi, -1, 0, 1, 2, 7, 100, 65_535, 2**31 - 1, -(2**31)) if lo <= v <= hi]
    return st.sampled_from(edges) | st.integers(lo, hi) | st.integers(max(lo, -1000), min(hi, 100_000))


FLOATS = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [0.0, -0.0, -1.0, 1e-300, 1e300, float("nan"), float("inf"), float("-inf")]
)


@dataclass(frozen=True)
class Sandbox:
    """Where generated paths may point: the test's own folder."""

    root: Path

    def path(self, text: str) -> str:
        safe = text.replace("\x00", "").replace("/", "_").replace("..", "_")[:200] or "x"
        return str(self.root / "callers" / safe)

    def paths(self) -> st.SearchStrategy[str]:
        fixed = [str(self.root / n) for n in ("callers", "files", "files/empty.wav", "files/noise.wav")]
        return st.sampled_from(fixed) | STRINGS.map(self.path) | st.just("")


def key_strategy() -> st.SearchStrategy[str]:
    keys = mostly(st.sampled_from(SAFE_KEYS), STRINGS)
    return keys.filter(lambda k: not UNSAFE_KEY.search(k.strip().upper()))


def value_strategy() -> st.SearchStrategy[str]:
    # A value with a line break and a '=' could smuggle a second setting into a file: those stay out.
    return STRINGS.filter(lambda v: not (("\n" in v or "\r" in v) and "=" in v))


def name_strategy(method: str) -> st.SearchStrategy[str]:
    known = st.sampled_from(sorted(REAL_NAMES))
    if method in ACTING:
        return STRINGS.filter(lambda n: n.strip().lower() not in REAL_NAMES)
    return mostly(known, STRINGS)


def field_strategy(
    field: FieldDescriptor, method: str, box: Sandbox, depth: int, hostile: bool
) -> st.SearchStrategy[Any]:
    """Values for one field: what a sensible caller sends, or (``hostile``) anything at all."""
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        if not hostile:
            return st.just({})
        return st.dictionaries(key_strategy(), value_strategy(), max_size=8)
    inner: st.SearchStrategy[Any]
    if field.message_type is not None:
        inner = message_strategy(field.message_type, method, box, depth + 1, hostile=hostile)
    elif field.type == FieldDescriptor.TYPE_STRING:
        inner = special_string(field, method, box) if hostile else sensible_string(field, method, box)
    elif field.type == FieldDescriptor.TYPE_BYTES:
        inner = (
            BYTES if hostile else st.sampled_from([b"", wav(16_000, 1, 2, 1_600), wav(24_000, 1, 2, 2_400)])
        )
    elif field.type == FieldDescriptor.TYPE_BOOL:
        inner = st.booleans()
    elif field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        inner = FLOATS if hostile else st.sampled_from(NUMBERS.get(field.name, [0.0, 0.5, 1.0]))
    elif field.type == FieldDescriptor.TYPE_ENUM:
        assert field.enum_type is not None
        numbers = [v.number for v in field.enum_type.values]
        inner = st.integers(-(2**31), 2**31 - 1) if hostile else st.sampled_from(numbers)
    else:
        inner = (
            ints(*INT_RANGES[field.type]) if hostile else st.sampled_from(NUMBERS.get(field.name, [0, 1, 2]))
        )
    if field.is_repeated:
        if not hostile:
            return st.lists(inner, max_size=2)
        return st.lists(inner, max_size=5) | st.lists(inner, min_size=100, max_size=300)
    return inner


def owner_name(field: FieldDescriptor) -> str:
    return field.containing_type.name if field.containing_type is not None else ""


def sensible_string(field: FieldDescriptor, method: str, box: Sandbox) -> st.SearchStrategy[str]:
    if field.name in ("cwd", "path"):
        return st.sampled_from([str(box.root / "callers"), str(box.root / "files" / "noise.wav"), ""])
    if field.name in ("key", "keys"):
        return st.sampled_from(SAFE_KEYS)
    if field.name == "name":
        names = sorted(REAL_NAMES) if method not in ACTING else ["no-such-service"]
        return st.sampled_from(["", *names])
    if field.name == "scope":
        return st.sampled_from(["user", "project", ""])
    if field.name in ("message", "text"):
        return st.sampled_from(PLAUSIBLE[field.name])
    if field.name == "format" and owner_name(field) == "SynthesizeRequest":
        return st.just("pcm")
    return st.sampled_from(["", *PLAUSIBLE.get(field.name, ["x"])])


def special_string(field: FieldDescriptor, method: str, box: Sandbox) -> st.SearchStrategy[str]:
    owner = owner_name(field)
    if field.name in ("cwd", "path"):
        return box.paths()
    if field.name == "key" and owner.endswith("ConfigRequest"):
        return key_strategy()
    if field.name == "keys":
        return key_strategy()
    if field.name == "value":
        return value_strategy()
    if field.name == "name":
        return name_strategy(method)
    if field.name == "scope":
        return mostly(st.sampled_from(["user", "project", ""]), STRINGS)
    if field.name in PLAUSIBLE:
        return mostly(st.sampled_from(PLAUSIBLE[field.name]), STRINGS)
    return STRINGS


def message_strategy(
    desc: Descriptor, method: str, box: Sandbox, depth: int = 0, *, hostile: bool = True
) -> st.SearchStrategy[Message]:
    """A message of ``desc``: half the time a sensible request with one hostile field (which reaches the
    stages behind the first check), otherwise every field hostile. Each field is set three times in four."""
    cls = message_factory.GetMessageClass(desc)
    if depth > 3 or not desc.fields:
        return st.just(cls())

    def build(values: dict[str, Any]) -> Message:
        msg = cls()
        for name, value in values.items():
            if value is UNSET:
                continue
            field = desc.fields_by_name[name]
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                getattr(msg, name).update(value)
            elif field.is_repeated and field.message_type is not None:
                for item in value:
                    getattr(msg, name).add().CopyFrom(item)
            elif field.is_repeated:
                getattr(msg, name).extend(value)
            elif field.message_type is not None:
                getattr(msg, name).CopyFrom(value)
            else:
                setattr(msg, name, value)
        return msg

    def shaped(target: str | None) -> st.SearchStrategy[Message]:
        fields = {
            f.name: mostly(
                field_strategy(f, method, box, depth, hostile=hostile and target in (None, f.name)),
                st.just(UNSET),
            )
            for f in desc.fields
        }
        return st.fixed_dictionaries(fields).map(build)

    if not hostile:
        return shaped(None)
    one_bad = st.sampled_from([f.name for f in desc.fields]).flatmap(shaped)
    return st.integers(0, 1).flatmap(lambda i: one_bad if i == 0 else shaped(None))


def request_strategy(method: MethodDescriptor, box: Sandbox) -> st.SearchStrategy[Any]:
    one = message_strategy(method.input_type, method.name, box)
    return st.lists(one, min_size=1, max_size=4) if method.client_streaming else one


# --- calls ---------------------------------------------------------------------------------------
def timeout_for(method: MethodDescriptor) -> float:
    if method.containing_service.name == "Conversation" and method.server_streaming:
        return 3.0
    return 1.0 if method.server_streaming or method.client_streaming else 10.0


@dataclass
class Outcome:
    code: grpc.StatusCode
    details: str

    def is_bug(self) -> bool:
        # An error echoed into metadata past its size limit is a daemon bug dressed as a resource error.
        return self.code in BUG_STATUSES or "metadata" in self.details.lower()


def call(channel: grpc.Channel, method: MethodDescriptor, request: Any) -> Outcome:
    path = f"/{method.containing_service.full_name}/{method.name}"
    out_cls = message_factory.GetMessageClass(method.output_type)
    ser, de = (lambda m: m.SerializeToString()), out_cls.FromString
    timeout = timeout_for(method)
    try:
        if method.client_streaming:
            responses = channel.stream_stream(path, ser, de)(iter(request), timeout=timeout)
            _drain(responses)
        elif method.server_streaming:
            _drain(channel.unary_stream(path, ser, de)(request, timeout=timeout))
        else:
            channel.unary_unary(path, ser, de)(request, timeout=timeout)
    except grpc.RpcError as exc:
        return Outcome(exc.code(), exc.details() or "")
    return Outcome(grpc.StatusCode.OK, "")


def _drain(responses: Any) -> None:
    for count, _ in enumerate(responses):
        if count >= STREAM_ITEMS:
            responses.cancel()
            return


def describe(request: Any, limit: int = 600) -> str:
    items = request if isinstance(request, list) else [request]
    text = " | ".join(text_format.MessageToString(m, as_one_line=True, as_utf8=False) for m in items)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


@dataclass
class Target:
    """The daemon under fuzz and the sandbox its requests point into."""

    daemon: DaemonHandle
    box: Sandbox
    channel: grpc.Channel

    def alive(self) -> bool:
        if self.daemon.process is None or self.daemon.process.poll() is not None:
            return False
        try:
            self.daemon_stub().GetStatus(daemon_pb2.GetStatusRequest(), timeout=10)
        except grpc.RpcError:
            return False
        return True

    def daemon_stub(self) -> daemon_pb2_grpc.DaemonStub:
        return daemon_pb2_grpc.DaemonStub(self.channel)

    def restart(self) -> None:
        self.channel.close()
        self.daemon.stop()
        start_fuzz_daemon(self.daemon)
        self.channel = self.daemon.client().channel

    def check(self, method: MethodDescriptor, request: Any) -> Outcome:
        outcome = call(self.channel, method, request)
        assert not outcome.is_bug(), f"{method.full_name} ended {outcome.code.name}: {outcome.details[:500]}"
        assert self.alive(), f"the daemon stopped answering after {method.full_name}"
        return outcome


PIP_OFFLINE = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": "", "PIP_CONFIG_FILE": os.devnull}
"""pip in the fuzzed daemon finds no index: nothing is downloaded, whatever a request names."""
FUZZ_ENV = {
    **PIP_OFFLINE,
    # Rooms live on a LiveKit server where nothing listens: no request reaches a real one.
    "LIVEKIT_URL": f"ws://127.0.0.1:{free_port()}",
    "LIVEKIT_API_KEY": "fuzz",
    "LIVEKIT_API_SECRET": "fuzz-secret-that-no-server-knows",
}


def start_fuzz_daemon(daemon: DaemonHandle) -> None:
    daemon.start(FUZZ_ENV, cwd=daemon.root / "daemon-cwd", memory_limit_bytes=MEMORY_LIMIT)


def prepare_files(root: Path) -> None:
    files = root / "files"
    files.mkdir(exist_ok=True)
    (root / "callers").mkdir(exist_ok=True)
    (files / "empty.wav").write_bytes(b"")
    (files / "noise.wav").write_bytes(wav(16_000, 1, 2, 1_600))


def fuzz_target() -> Iterator[Target]:
    """A daemon on virtual audio devices whose STT and TTS endpoint is a real loopback server."""
    for daemon, _ in speech_daemon(FUZZ_ENV, memory_limit_bytes=MEMORY_LIMIT):
        prepare_files(daemon.root)
        t = Target(daemon, Sandbox(daemon.root), daemon.client().channel)
        yield t
        t.channel.close()
