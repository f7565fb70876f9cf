"""The API's compatibility check: proto/ as it is now against the descriptor set committed beside it.

The committed set (``proto/voicemode.v1.txtpb``) records the API as the last compatible change left it.
A client built from it must keep working against a daemon built from the current sources, so a change
that breaks the wire or JSON form of a message, or the path or shape of an RPC, is refused: a removed
message, enum, service, method, field or enum value (a removed field or value is fine once both its
number and its name are ``reserved``), a renumbered or renamed field or value, a changed field type,
label, presence or oneof, changed RPC types or streaming, a changed package, and reserved numbers or
names that are released again. Additions pass.

``--write`` refuses a breaking change and otherwise rewrites the committed set; ``--check`` also fails
when the committed set is out of date, the way generated code is checked for drift.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Container, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Protocol

from google.protobuf import descriptor_pb2 as d
from google.protobuf import text_format
from grpc_tools import protoc

from voicemoded.api.errors import InvalidArgument

ROOT = Path(__file__).resolve().parents[1]
PROTO_DIR = ROOT / "proto"
COMMITTED = PROTO_DIR / "voicemode.v1.txtpb"

HEADER = (
    "# proto/voicemode/v1 as a google.protobuf.FileDescriptorSet in text format: the API as the last\n"
    "# compatible change left it. Written by scripts/gen-protos.sh, never by hand; see proto/README.md.\n"
)

Field = d.FieldDescriptorProto
_REPEATED = Field.LABEL_REPEATED


@dataclass(frozen=True, order=True)
class Break:
    """One breaking change, named by the file it was in and the element it broke."""

    file: str
    element: str
    change: str

    def __str__(self) -> str:
        return f"{self.file}: {self.element}: {self.change}"


def compile_protos(proto_dir: Path = PROTO_DIR) -> d.FileDescriptorSet:
    """Every .proto under ``proto_dir``, compiled by grpcio-tools' protoc.

    Imports (protobuf's well-known types) are left out: they are not ours to keep compatible. So is
    source information, so that a comment never makes the committed set stale.
    """
    names = sorted(p.relative_to(proto_dir).as_posix() for p in proto_dir.rglob("*.proto"))
    if not names:
        raise InvalidArgument(f"no .proto files under {_shown(proto_dir)}")
    well_known = resources.files("grpc_tools") / "_proto"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "set.binpb"
        args = ["protoc", f"-I{proto_dir}", f"-I{well_known}", f"--descriptor_set_out={out}", *names]
        if protoc.main(args) != 0:
            raise InvalidArgument(
                f"{_shown(proto_dir)} does not compile", hint="protoc's errors are printed above"
            )
        compiled = d.FileDescriptorSet.FromString(out.read_bytes())
    compiled.file.sort(key=lambda f: f.name)
    return compiled


def render(fds: d.FileDescriptorSet) -> str:
    """The committed form: text, so that a change to the API reads as a diff in review."""
    return HEADER + text_format.MessageToString(fds)


def load(path: Path = COMMITTED) -> d.FileDescriptorSet:
    return text_format.Parse(path.read_text(encoding="utf-8"), d.FileDescriptorSet())


@dataclass
class _Index:
    """Every named element of a descriptor set by full name (without the leading dot), with its file."""

    packages: dict[str, str] = field(default_factory=dict)
    messages: dict[str, tuple[str, d.DescriptorProto]] = field(default_factory=dict)
    enums: dict[str, tuple[str, d.EnumDescriptorProto]] = field(default_factory=dict)
    services: dict[str, tuple[str, d.ServiceDescriptorProto]] = field(default_factory=dict)

    @classmethod
    def of(cls, fds: d.FileDescriptorSet) -> _Index:
        index = cls()
        for f in fds.file:
            index.packages[f.name] = f.package
            scope = f.package + "." if f.package else ""
            index._add(f.name, scope, f.message_type, f.enum_type)
            for s in f.service:
                index.services[scope + s.name] = (f.name, s)
        return index

    def _add(
        self,
        file: str,
        scope: str,
        messages: Iterable[d.DescriptorProto],
        enums: Iterable[d.EnumDescriptorProto],
    ) -> None:
        for e in enums:
            self.enums[scope + e.name] = (file, e)
        for m in messages:
            self.messages[scope + m.name] = (file, m)
            self._add(file, f"{scope}{m.name}.", m.nested_type, m.enum_type)


def breaking_changes(old: d.FileDescriptorSet, new: d.FileDescriptorSet) -> list[Break]:
    """What in ``new`` breaks a client written against ``old``, sorted by file and element."""
    was, now = _Index.of(old), _Index.of(new)
    found: list[Break] = []
    for file, package in was.packages.items():
        if file in now.packages and now.packages[file] != package:
            found.append(Break(file, "package", f"changed from {package!r} to {now.packages[file]!r}"))
    for name, (file, msg) in was.messages.items():
        if name in now.messages:
            found.extend(_message(file, name, msg, now.messages[name][1]))
        elif not msg.options.map_entry and _parent_kept(name, was.messages, now.messages):
            # A map's entry type is protobuf's own: its field's change is the one to report.
            found.append(Break(file, f"message {name}", "removed"))
    for name, (file, enum) in was.enums.items():
        if name in now.enums:
            found.extend(_enum(file, name, enum, now.enums[name][1]))
        elif _parent_kept(name, was.messages, now.messages):
            found.append(Break(file, f"enum {name}", "removed"))
    for name, (file, service) in was.services.items():
        if name in now.services:
            found.extend(_service(file, name, service, now.services[name][1]))
        else:
            found.append(Break(file, f"service {name}", "removed"))
    return sorted(found)


def _parent_kept(name: str, was: Container[str], now: Container[str]) -> bool:
    """False for an element nested in a removed message: the message's removal is the one to report."""
    parent = name.rpartition(".")[0]
    return parent not in was or parent in now


def _message(file: str, name: str, old: d.DescriptorProto, new: d.DescriptorProto) -> Iterator[Break]:
    by_number = {f.number: f for f in new.field}
    by_name = {f.name: f for f in new.field}
    for f in old.field:
        where = f"field {name}.{f.name} = {f.number}"
        now = by_number.get(f.number)
        if now is not None and now.name == f.name:
            yield from (Break(file, where, c) for c in _field_changes(f, old, now, new))
        elif f.name in by_name:
            yield Break(file, where, f"renumbered to {by_name[f.name].number}")
        elif now is not None:
            yield Break(file, where, f"number {f.number} now belongs to field {now.name!r}")
        elif missing := _unreserved(f.number, f.name, new.reserved_range, new.reserved_name, end=0):
            yield Break(file, where, f"removed without {missing}")
    yield from _reserved_kept(file, f"message {name}", old, new, end=0)


def _field_changes(
    old: Field, old_msg: d.DescriptorProto, new: Field, new_msg: d.DescriptorProto
) -> Iterator[str]:
    if (old.type, old.type_name) != (new.type, new.type_name):
        yield f"type changed from {_type(old)} to {_type(new)}"
    if (old.label == _REPEATED) != (new.label == _REPEATED):
        yield f"changed from {_cardinality(old)} to {_cardinality(new)}"
    if old.proto3_optional != new.proto3_optional:
        yield "`optional` added" if new.proto3_optional else "`optional` removed"
    if _oneof(old, old_msg) != _oneof(new, new_msg):
        yield f"moved from {_oneof_text(old, old_msg)} to {_oneof_text(new, new_msg)}"
    if old.json_name != new.json_name:
        yield f"JSON name changed from {old.json_name!r} to {new.json_name!r}"


def _type(f: Field) -> str:
    if f.type_name:
        return f.type_name.lstrip(".")
    return Field.Type.Name(f.type).removeprefix("TYPE_").lower()


def _cardinality(f: Field) -> str:
    return "repeated" if f.label == _REPEATED else "singular"


def _oneof(f: Field, msg: d.DescriptorProto) -> str | None:
    """The real oneof a field belongs to; proto3 `optional` puts a field alone in a synthetic one."""
    if not f.HasField("oneof_index") or f.proto3_optional:
        return None
    return msg.oneof_decl[f.oneof_index].name


def _oneof_text(f: Field, msg: d.DescriptorProto) -> str:
    oneof = _oneof(f, msg)
    return f"oneof {oneof}" if oneof else "no oneof"


def _enum(file: str, name: str, old: d.EnumDescriptorProto, new: d.EnumDescriptorProto) -> Iterator[Break]:
    numbers = {v.number: v.name for v in new.value}
    by_name = {v.name: v.number for v in new.value}
    for v in old.value:
        where = f"enum value {name}.{v.name} = {v.number}"
        if v.name in by_name:
            if by_name[v.name] != v.number:
                yield Break(file, where, f"renumbered to {by_name[v.name]}")
        elif v.number in numbers:
            yield Break(file, where, f"number {v.number} now belongs to value {numbers[v.number]!r}")
        # Enum reserved ranges include their end; message reserved ranges do not.
        elif missing := _unreserved(v.number, v.name, new.reserved_range, new.reserved_name, end=1):
            yield Break(file, where, f"removed without {missing}")
    yield from _reserved_kept(file, f"enum {name}", old, new, end=1)


def _service(
    file: str, name: str, old: d.ServiceDescriptorProto, new: d.ServiceDescriptorProto
) -> Iterator[Break]:
    methods = {m.name: m for m in new.method}
    for m in old.method:
        where = f"rpc {name}.{m.name}"
        now = methods.get(m.name)
        if now is None:
            yield Break(file, where, "removed")
            continue
        for part, before, after in (
            ("request type", m.input_type, now.input_type),
            ("response type", m.output_type, now.output_type),
        ):
            if before != after:
                yield Break(file, where, f"{part} changed from {before.lstrip('.')} to {after.lstrip('.')}")
        for side, before_streams, after_streams in (
            ("request", m.client_streaming, now.client_streaming),
            ("response", m.server_streaming, now.server_streaming),
        ):
            if before_streams != after_streams:
                yield Break(file, where, f"{side} {'now' if after_streams else 'no longer'} streamed")


class _Ranged(Protocol):
    """A reserved range of a message (end exclusive) or an enum (end inclusive)."""

    start: int
    end: int


def _unreserved(number: int, name: str, ranges: Sequence[_Ranged], names: Sequence[str], *, end: int) -> str:
    """What a removal still has to reserve (``end`` is 1 where a range's end is inclusive), or ""."""
    missing = []
    if not any(r.start <= number < r.end + end for r in ranges):
        missing.append(f"`reserved {number};`")
    if name not in names:
        missing.append(f'`reserved "{name}";`')
    return " and ".join(missing)


def _reserved_kept(
    file: str,
    element: str,
    old: d.DescriptorProto | d.EnumDescriptorProto,
    new: d.DescriptorProto | d.EnumDescriptorProto,
    *,
    end: int,
) -> Iterator[Break]:
    """Reserved numbers and names stay reserved: releasing one lets a new field take an old meaning."""
    kept = [(n.start, n.end + end) for n in new.reserved_range]
    for r in old.reserved_range:
        for start, stop in _uncovered(r.start, r.end + end, kept):
            numbers = str(start) if stop - 1 == start else f"{start} to {stop - 1}"
            yield Break(file, element, f"reserved {numbers} no longer reserved")
    for reserved in old.reserved_name:
        if reserved not in new.reserved_name:
            yield Break(file, element, f"reserved name {reserved!r} no longer reserved")


def _uncovered(start: int, stop: int, ranges: list[tuple[int, int]]) -> Iterator[tuple[int, int]]:
    """The parts of the half-open ``[start, stop)`` outside every one of the half-open ``ranges``."""
    for lo, hi in sorted(ranges):
        if hi <= start:
            continue
        if lo >= stop:
            break
        if lo > start:
            yield start, lo
        start = hi
        if start >= stop:
            return
    if start < stop:
        yield start, stop


def run(*, check: bool, accept_breaking: bool, proto_dir: Path, committed: Path) -> list[str]:
    """Compares, then writes the committed set unless checking; returns the problems (none: success)."""
    current = compile_protos(proto_dir)
    if not committed.exists():
        if check:
            return [f"{_shown(committed)} is missing: run scripts/gen-protos.sh and commit it"]
        committed.write_text(render(current), encoding="utf-8")
        return []
    if not accept_breaking and (found := breaking_changes(load(committed), current)):
        return [
            *(f"breaking change: {_shown(proto_dir)}/{b}" for b in found),
            "a breaking change belongs in a new API version (a new package): see proto/README.md",
        ]
    text = render(current)
    if committed.read_text(encoding="utf-8") != text:
        if check:
            return [f"{_shown(committed)} is out of date: run scripts/gen-protos.sh and commit the result"]
        committed.write_text(text, encoding="utf-8")
    return []


def _shown(path: Path) -> str:
    """A path as the developer typed it: relative to the checkout when it is inside."""
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Checks proto/ against its committed descriptor set.")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true", help="fail when proto/ breaks or the set is stale")
    mode.add_argument("--write", action="store_true", help="rewrite the committed set unless proto/ breaks")
    parser.add_argument(
        "--accept-breaking",
        action="store_true",
        help="with --write: record a breaking change on purpose (the set's diff shows it to reviewers)",
    )
    parser.add_argument("--proto", type=Path, default=PROTO_DIR, help="the folder of .proto files")
    parser.add_argument("--set", type=Path, default=COMMITTED, help="the committed descriptor set")
    args = parser.parse_args(argv)
    if args.accept_breaking and args.check:
        parser.error("--accept-breaking goes with --write")
    try:
        problems = run(
            check=args.check, accept_breaking=args.accept_breaking, proto_dir=args.proto, committed=args.set
        )
    except InvalidArgument as e:
        problems = [str(e)]
    for line in problems:
        print(line, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
