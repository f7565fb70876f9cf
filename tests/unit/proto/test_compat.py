"""The API's compatibility check: each kind of breaking edit to a copy of proto/ is reported, additions
pass, and the committed descriptor set is the one the sources compile to.

Every case edits the real sources as text and compiles them with protoc, as a developer's change would.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "scripts"))

import proto_compat

Edit = tuple[str, str, str]
"""A file under voicemode/v1/, a text that occurs in it exactly once, and what replaces it."""

ADDED_FILE = """syntax = "proto3";

package voicemode.v1;

service Legacy {
  rpc Ping(LegacyPing) returns (LegacyPing);
}

message LegacyPing {
  enum Mode {
    MODE_UNSPECIFIED = 0;
  }
  message Part {
    string text = 1;
  }
  Mode mode = 1;
  repeated Part parts = 2;
}
"""


@pytest.fixture(scope="module")
def current() -> descriptor_pb2.FileDescriptorSet:
    return proto_compat.compile_protos()


def _tree(parent: Path, *edits: Edit, add: dict[str, str] | None = None) -> Path:
    """A copy of proto/ with the edits applied and the files added."""
    root = Path(tempfile.mkdtemp(dir=parent)) / "proto"
    shutil.copytree(proto_compat.PROTO_DIR, root)
    v1 = root / "voicemode" / "v1"
    for name, old, new in edits:
        text = (v1 / name).read_text()
        assert text.count(old) == 1, f"{old!r} is not in {name} exactly once: update this case"
        (v1 / name).write_text(text.replace(old, new))
    for name, text in (add or {}).items():
        (v1 / name).write_text(text)
    return root


def _breaks(parent: Path, *edits: Edit, base: descriptor_pb2.FileDescriptorSet) -> list[str]:
    edited = proto_compat.compile_protos(_tree(parent, *edits))
    return [str(b) for b in proto_compat.breaking_changes(base, edited)]


SERVICES = "voicemode/v1/services.proto"
MCP = "voicemode/v1/mcp.proto"
REMOVED_HOST = 'field voicemode.v1.ServiceInfo.host = 5: removed without `reserved 5;` and `reserved "host";`'
BREAKS: dict[str, tuple[list[Edit], list[str]]] = {
    "field removed": (
        [("services.proto", "  string host = 5;\n", "")],
        [f"{SERVICES}: {REMOVED_HOST}"],
    ),
    "field removed, only its number reserved": (
        [("services.proto", "  string host = 5;\n", "  reserved 5;\n")],
        [f'{SERVICES}: field voicemode.v1.ServiceInfo.host = 5: removed without `reserved "host";`'],
    ),
    "field removed, only its name reserved": (
        [("services.proto", "  string host = 5;\n", '  reserved "host";\n')],
        [f"{SERVICES}: field voicemode.v1.ServiceInfo.host = 5: removed without `reserved 5;`"],
    ),
    "field renumbered": (
        [("services.proto", "string host = 5;", "string host = 50;")],
        [f"{SERVICES}: field voicemode.v1.ServiceInfo.host = 5: renumbered to 50"],
    ),
    "field number reused by another name": (
        [("services.proto", "string host = 5;", "string hostname = 5;")],
        [f"{SERVICES}: field voicemode.v1.ServiceInfo.host = 5: number 5 now belongs to field 'hostname'"],
    ),
    "scalar type changed": (
        [("services.proto", "int32 port = 6;", "int64 port = 6;")],
        [f"{SERVICES}: field voicemode.v1.ServiceInfo.port = 6: type changed from int32 to int64"],
    ),
    "scalar became a message": (
        [("services.proto", "int32 port = 6;", "LogLine port = 6;")],
        [
            f"{SERVICES}: field voicemode.v1.ServiceInfo.port = 6: type changed from int32 to voicemode.v1.LogLine"
        ],
    ),
    "message type changed": (
        [("mcp.proto", "CallerContext caller = 1;", "ErrorDetail caller = 1;")],
        [
            f"{MCP}: field voicemode.v1.McpOpen.caller = 1: "
            "type changed from voicemode.v1.CallerContext to voicemode.v1.ErrorDetail"
        ],
    ),
    "map value type changed": (
        [("common.proto", "map<string, string> env = 2;", "map<string, int32> env = 2;")],
        [
            "voicemode/v1/common.proto: field voicemode.v1.CallerContext.EnvEntry.value = 2: "
            "type changed from string to int32"
        ],
    ),
    "repeated became singular": (
        [("services.proto", "repeated string command = 4;", "string command = 4;")],
        [f"{SERVICES}: field voicemode.v1.ServiceInfo.command = 4: changed from repeated to singular"],
    ),
    "singular became repeated": (
        [("services.proto", "  string url = 7;", "  repeated string url = 7;")],
        [f"{SERVICES}: field voicemode.v1.ServiceInfo.url = 7: changed from singular to repeated"],
    ),
    "optional removed": (
        [("conversation.proto", "optional double speed = 10;", "double speed = 10;")],
        [
            "voicemode/v1/conversation.proto: field voicemode.v1.ConverseRequest.speed = 10: `optional` removed"
        ],
    ),
    "optional added": (
        [("services.proto", "  int32 port = 6;", "  optional int32 port = 6;")],
        [f"{SERVICES}: field voicemode.v1.ServiceInfo.port = 6: `optional` added"],
    ),
    "field moved out of its oneof": (
        [("mcp.proto", "    McpClose close = 3;\n  }\n", "  }\n  McpClose close = 3;\n")],
        [f"{MCP}: field voicemode.v1.McpFrame.close = 3: moved from oneof frame to no oneof"],
    ),
    "JSON name changed": (
        [("services.proto", "string host = 5;", 'string host = 5 [json_name = "hostName"];')],
        [f"{SERVICES}: field voicemode.v1.ServiceInfo.host = 5: JSON name changed from 'host' to 'hostName'"],
    ),
    "message renamed": (
        [
            ("mcp.proto", "message McpClose {", "message McpEnd {"),
            ("mcp.proto", "    McpClose close = 3;", "    McpEnd close = 3;"),
        ],
        [
            f"{MCP}: field voicemode.v1.McpFrame.close = 3: "
            "type changed from voicemode.v1.McpClose to voicemode.v1.McpEnd",
            f"{MCP}: message voicemode.v1.McpClose: removed",
        ],
    ),
    "enum renamed": (
        [
            ("services.proto", "enum ServiceState {", "enum ServiceStatus {"),
            ("services.proto", "  ServiceState state = 2;", "  ServiceStatus state = 2;"),
        ],
        [
            f"{SERVICES}: enum voicemode.v1.ServiceState: removed",
            f"{SERVICES}: field voicemode.v1.ServiceInfo.state = 2: "
            "type changed from voicemode.v1.ServiceState to voicemode.v1.ServiceStatus",
        ],
    ),
    "enum value removed": (
        [("services.proto", "  FATAL = 7;\n", "")],
        [
            f"{SERVICES}: enum value voicemode.v1.ServiceState.FATAL = 7: "
            'removed without `reserved 7;` and `reserved "FATAL";`'
        ],
    ),
    "enum value removed, only its number reserved": (
        [("services.proto", "  FATAL = 7;\n", "  reserved 7;\n")],
        [f'{SERVICES}: enum value voicemode.v1.ServiceState.FATAL = 7: removed without `reserved "FATAL";`'],
    ),
    "enum value renumbered": (
        [("services.proto", "FATAL = 7;", "FATAL = 8;")],
        [f"{SERVICES}: enum value voicemode.v1.ServiceState.FATAL = 7: renumbered to 8"],
    ),
    "enum value renamed": (
        [("services.proto", "FATAL = 7;", "FAILED = 7;")],
        [
            f"{SERVICES}: enum value voicemode.v1.ServiceState.FATAL = 7: number 7 now belongs to value 'FAILED'"
        ],
    ),
    "service removed": (
        [
            (
                "mcp.proto",
                "service McpTunnel {\n"
                "  // First client frame is `open`; then each frame carries exactly one JSON-RPC message (UTF-8 JSON).\n"
                "  rpc Session(stream McpFrame) returns (stream McpFrame);\n"
                "}\n",
                "",
            )
        ],
        [f"{MCP}: service voicemode.v1.McpTunnel: removed"],
    ),
    "rpc removed": (
        [("services.proto", "  rpc RemoveModel(ModelRequest) returns (ModelInfo);\n", "")],
        [f"{SERVICES}: rpc voicemode.v1.Supervisor.RemoveModel: removed"],
    ),
    "rpc request type changed": (
        [("services.proto", "rpc GetService(ServiceRequest)", "rpc GetService(ModelRequest)")],
        [
            f"{SERVICES}: rpc voicemode.v1.Supervisor.GetService: "
            "request type changed from voicemode.v1.ServiceRequest to voicemode.v1.ModelRequest"
        ],
    ),
    "rpc response type changed": (
        [
            (
                "services.proto",
                "rpc RemoveModel(ModelRequest) returns (ModelInfo);",
                "rpc RemoveModel(ModelRequest) returns (ServiceInfo);",
            )
        ],
        [
            f"{SERVICES}: rpc voicemode.v1.Supervisor.RemoveModel: "
            "response type changed from voicemode.v1.ModelInfo to voicemode.v1.ServiceInfo"
        ],
    ),
    "rpc response no longer streamed": (
        [("services.proto", "returns (stream LogLine);", "returns (LogLine);")],
        [f"{SERVICES}: rpc voicemode.v1.Supervisor.TailLogs: response no longer streamed"],
    ),
    "rpc request now streamed": (
        [("services.proto", "rpc GetService(ServiceRequest)", "rpc GetService(stream ServiceRequest)")],
        [f"{SERVICES}: rpc voicemode.v1.Supervisor.GetService: request now streamed"],
    ),
    "rpc request no longer streamed": (
        [("mcp.proto", "rpc Session(stream McpFrame)", "rpc Session(McpFrame)")],
        [f"{MCP}: rpc voicemode.v1.McpTunnel.Session: request no longer streamed"],
    ),
}


@pytest.mark.parametrize("case", list(BREAKS))
def test_a_breaking_edit_is_reported_by_file_and_element(
    case: str, tmp_path: Path, current: descriptor_pb2.FileDescriptorSet
) -> None:
    edits, expected = BREAKS[case]
    assert _breaks(tmp_path, *edits, base=current) == expected


def test_a_changed_package_is_reported_for_each_file(
    tmp_path: Path, current: descriptor_pb2.FileDescriptorSet
) -> None:
    names = sorted(p.name for p in (proto_compat.PROTO_DIR / "voicemode" / "v1").glob("*.proto"))
    edits = [(n, "package voicemode.v1;", "package voicemode.v2;") for n in names]
    found = _breaks(tmp_path, *edits, base=current)
    for name in names:
        assert f"voicemode/v1/{name}: package: changed from 'voicemode.v1' to 'voicemode.v2'" in found
    assert f"{SERVICES}: service voicemode.v1.Supervisor: removed" in found


def test_additions_and_reserved_removals_pass(
    tmp_path: Path, current: descriptor_pb2.FileDescriptorSet
) -> None:
    edits: list[Edit] = [
        # A field removed with both its number and its name reserved, in a message and in an enum.
        ("services.proto", "  string host = 5;\n", '  reserved 5;\n  reserved "host";\n'),
        ("services.proto", "  FATAL = 7;\n", '  reserved 7;\n  reserved "FATAL";\n'),
        # New fields, a new enum value, a new rpc, a new message, a comment changed.
        (
            "services.proto",
            "  string reason = 19;\n",
            "  string reason = 19;\n  repeated string notes = 20;\n",
        ),
        ("services.proto", "  EXITED = 6;\n", "  EXITED = 6;\n  PAUSED = 8;\n"),
        (
            "services.proto",
            "  rpc UseModel(ModelRequest) returns (ModelInfo);\n",
            "  rpc UseModel(ModelRequest) returns (ModelInfo);\n  rpc PauseService(ServiceRequest) returns (ServiceInfo);\n",
        ),
        (
            "services.proto",
            "message ListServicesRequest {}",
            "message ListServicesRequest {}\n\nmessage Pause {\n  int32 seconds = 1;\n}",
        ),
        ("mcp.proto", "    McpClose close = 3;\n", "    McpClose close = 3;\n    string ping = 4;\n"),
        ("mcp.proto", "message McpClose {\n", "// Said last.\nmessage McpClose {\n"),
    ]
    edited = proto_compat.compile_protos(_tree(tmp_path, *edits, add={"legacy.proto": ADDED_FILE}))
    assert proto_compat.breaking_changes(current, edited) == []


def test_a_removed_message_is_one_break_not_one_per_nested_type(tmp_path: Path) -> None:
    with_legacy = proto_compat.compile_protos(_tree(tmp_path, add={"legacy.proto": ADDED_FILE}))
    without_service = ADDED_FILE.split("message LegacyPing")[0].replace(
        "service Legacy {\n  rpc Ping(LegacyPing) returns (LegacyPing);\n}\n", ""
    )
    edited = proto_compat.compile_protos(_tree(tmp_path, add={"legacy.proto": without_service}))
    assert [str(b) for b in proto_compat.breaking_changes(with_legacy, edited)] == [
        "voicemode/v1/legacy.proto: message voicemode.v1.LegacyPing: removed",
        "voicemode/v1/legacy.proto: service voicemode.v1.Legacy: removed",
    ]


def test_a_type_moved_to_another_file_of_the_package_passes(
    tmp_path: Path, current: descriptor_pb2.FileDescriptorSet
) -> None:
    log_line = "message LogLine {\n  string service = 1;\n  string line = 2;\n}\n"
    moved = _tree(
        tmp_path,
        ("services.proto", log_line, ""),
        ("common.proto", "message AudioFormat {", log_line + "\nmessage AudioFormat {"),
    )
    assert proto_compat.breaking_changes(current, proto_compat.compile_protos(moved)) == []


RESERVED = [("services.proto", "  string host = 5;\n", '  reserved 5, 20 to 30;\n  reserved "host";\n')]


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        ('  reserved 5, 20 to 25;\n  reserved "host";\n', "reserved 26 to 30 no longer reserved"),
        ('  reserved 5, 20 to 22, 26 to 30;\n  reserved "host";\n', "reserved 23 to 25 no longer reserved"),
        (
            '  reserved 20 to 30;\n  reserved "host";\n  string hostname = 5;\n',
            "reserved 5 no longer reserved",
        ),
        ("  reserved 5, 20 to 30;\n", "reserved name 'host' no longer reserved"),
    ],
)
def test_reserved_numbers_and_names_stay_reserved(tmp_path: Path, now: str, expected: str) -> None:
    base = proto_compat.compile_protos(_tree(tmp_path, *RESERVED))
    edit = ("services.proto", "  string host = 5;\n", now)
    assert _breaks(tmp_path, edit, base=base) == [f"{SERVICES}: message voicemode.v1.ServiceInfo: {expected}"]


def test_reserved_ranges_may_be_split_or_widened(tmp_path: Path) -> None:
    base = proto_compat.compile_protos(_tree(tmp_path, *RESERVED))
    edit = (
        "services.proto",
        "  string host = 5;\n",
        '  reserved 5, 20 to 24, 25 to 27, 28 to max;\n  reserved "host";\n',
    )
    assert _breaks(tmp_path, edit, base=base) == []


def test_the_committed_set_is_what_proto_compiles_to(current: descriptor_pb2.FileDescriptorSet) -> None:
    committed = proto_compat.COMMITTED.read_text(encoding="utf-8")
    assert committed == proto_compat.render(current), "proto/ changed: run scripts/gen-protos.sh and commit"


def _main(*args: str | Path) -> int:
    return proto_compat.main([str(a) for a in args])


def test_check_and_write_keep_the_set_in_step(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    proto, committed = _tree(tmp_path), tmp_path / "v1.txtpb"
    assert _main("--check", "--proto", proto, "--set", committed) == 1
    assert "v1.txtpb is missing: run scripts/gen-protos.sh" in capsys.readouterr().err
    assert _main("--write", "--proto", proto, "--set", committed) == 0
    assert _main("--check", "--proto", proto, "--set", committed) == 0
    assert committed.read_text(encoding="utf-8").startswith("# proto/voicemode/v1 as a")

    # A compatible change makes the set stale for --check; --write brings it up to date.
    services = proto / "voicemode" / "v1" / "services.proto"
    services.write_text(services.read_text() + "\nmessage Pause {\n  int32 seconds = 1;\n}\n")
    capsys.readouterr()
    assert _main("--check", "--proto", proto, "--set", committed) == 1
    assert "v1.txtpb is out of date: run scripts/gen-protos.sh" in capsys.readouterr().err
    assert _main("--write", "--proto", proto, "--set", committed) == 0
    assert "Pause" in committed.read_text(encoding="utf-8")
    assert _main("--check", "--proto", proto, "--set", committed) == 0


def test_write_refuses_a_breaking_change_unless_accepted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proto, committed = _tree(tmp_path), tmp_path / "v1.txtpb"
    assert _main("--write", "--proto", proto, "--set", committed) == 0
    before = committed.read_text(encoding="utf-8")
    services = proto / "voicemode" / "v1" / "services.proto"
    services.write_text(services.read_text().replace("  string host = 5;\n", ""))
    capsys.readouterr()

    for mode in ("--write", "--check"):
        assert _main(mode, "--proto", proto, "--set", committed) == 1
        err = capsys.readouterr().err
        assert f"breaking change: {proto}/{SERVICES}: {REMOVED_HOST}" in err
        assert "belongs in a new API version" in err
    assert committed.read_text(encoding="utf-8") == before

    assert _main("--write", "--accept-breaking", "--proto", proto, "--set", committed) == 0
    assert committed.read_text(encoding="utf-8") != before
    assert _main("--check", "--proto", proto, "--set", committed) == 0


def test_a_proto_that_does_not_compile_fails_plainly(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    proto = _tree(tmp_path, ("services.proto", "string host = 5;", "string host = ;"))
    assert _main("--check", "--proto", proto, "--set", tmp_path / "v1.txtpb") == 1
    err = capfd.readouterr().err
    assert "services.proto" in err  # protoc's own error, naming the file and line
    assert "does not compile (protoc's errors are printed above)" in err


def test_accept_breaking_goes_with_write_only(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_:
        _main("--check", "--accept-breaking", "--set", tmp_path / "v1.txtpb")
    assert exit_.value.code == 2
