"""The front doors' contract is ``voicemoded.api``: no door reaches into the daemon, by any import.

Checked twice: statically, every import statement of every module (those inside functions too, and
``importlib.import_module`` with a literal name), and at run time, by importing every module of each
door in a fresh interpreter and reading ``sys.modules``. The CLI's own modules form no import cycle.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
DOORS = ("voicemodectl", "voicemode_mcp", "voicemode_web")
#: What the doors are allowed of the daemon's package: its version, and the API package.
ALLOWED = ("voicemoded", "voicemoded._version")
#: Nothing a front door imports may load these (its start-up time is a feature).
HEAVY = ("numpy", "pyaudio", "openai", "mcp", "structlog", "av", "soxr", "fastapi", "uvicorn")


def allowed(module: str) -> bool:
    return module in ALLOWED or module == "voicemoded.api" or module.startswith("voicemoded.api.")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_files(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py") if "__pycache__" not in p.parts)


KNOWN = {module_name(p) for package in ("voicemoded", *DOORS) for p in package_files(package)}


def imports_of(source: str, module: str, is_package: bool = False) -> Iterator[tuple[int, str]]:
    """(line, module) for every module ``source`` imports, wherever the statement is."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            yield node.lineno, base
            for alias in node.names:
                if f"{base}.{alias.name}" in KNOWN:
                    yield node.lineno, f"{base}.{alias.name}"
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                yield node.lineno, node.args[0].value


def scanned() -> Iterator[tuple[Path, str]]:
    """Every module of both doors and of the API package they may use (it must not reach further)."""
    for package in (*DOORS, "voicemoded/api"):
        for path in package_files(package):
            yield path, module_name(path)


def test_the_scan_sees_imports_inside_functions_relative_and_by_name() -> None:
    source = (
        "import os\n"
        "def later():\n"
        "    from voicemoded.config import schema\n"
        "    from .. import conversation\n"
        "    importlib.import_module('voicemoded.audio.devices')\n"
        "from voicemoded import __version__, supervisor\n"
    )
    found = {name for _, name in imports_of(source, "voicemoded.api.client")}
    forbidden = {name for name in found if name.startswith("voicemoded") and not allowed(name)}
    assert forbidden == {
        "voicemoded.config",
        "voicemoded.config.schema",
        "voicemoded.conversation",
        "voicemoded.audio.devices",
        "voicemoded.supervisor",
    }
    assert "voicemoded" in found and allowed("voicemoded.api.paths") and not allowed("voicemoded.apix")


def test_no_import_statement_of_a_front_door_names_the_daemons_internals() -> None:
    found = []
    for path, module in scanned():
        for line, name in imports_of(path.read_text(), module, path.name == "__init__.py"):
            if (name == "voicemoded" or name.startswith("voicemoded.")) and not allowed(name):
                found.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert found == []


def test_importing_every_module_of_both_doors_loads_only_the_api() -> None:
    code = (
        "import importlib, json, pkgutil, sys\n"
        f"for door in {DOORS!r}:\n"
        "    package = importlib.import_module(door)\n"
        "    for info in pkgutil.walk_packages(package.__path__, door + '.'):\n"
        "        importlib.import_module(info.name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout)
    assert {
        "voicemodectl.__main__",
        "voicemodectl.completion",
        "voicemode_mcp.tunnel",
        "voicemode_web.api",
    } <= set(loaded)
    ours = [m for m in loaded if m == "voicemoded" or m.startswith("voicemoded.")]
    assert [m for m in ours if not allowed(m)] == []
    assert [m for m in loaded if m.split(".")[0] in HEAVY] == []


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import cycle, each once, as the modules along it."""
    found: list[list[str]] = []
    seen: set[frozenset[str]] = set()

    def visit(node: str, trail: list[str]) -> None:
        for target in sorted(graph.get(node, ())):
            if target in trail:
                loop = trail[trail.index(target) :]
                if frozenset(loop) not in seen:
                    seen.add(frozenset(loop))
                    found.append([*loop, target])
            elif len(trail) < len(graph):
                visit(target, [*trail, target])

    for start in sorted(graph):
        visit(start, [start])
    return found


def test_cycles_finds_a_loop_through_a_function_level_import() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("door", DOORS)
def test_no_import_cycle_among_a_doors_modules(door: str) -> None:
    graph: dict[str, set[str]] = {}
    for path in package_files(door):
        module = module_name(path)
        names = {name for _, name in imports_of(path.read_text(), module, path.name == "__init__.py")}
        graph[module] = {n for n in names if n.split(".")[0] == door and n in KNOWN and n != module}
    assert cycles(graph) == []


def built_messages(source: str) -> Iterator[tuple[int, str]]:
    """(line, what) for each protobuf message a module builds and each caller context it makes."""
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            if func.value.id.endswith("_pb2"):
                yield node.lineno, f"{func.value.id}.{func.attr}(...)"
            elif func.attr == "caller":
                yield node.lineno, f"{func.value.id}.caller()"
        yield from ((node.lineno, "caller=...") for k in node.keywords if k.arg == "caller")


def test_the_doors_leave_requests_and_caller_contexts_to_the_client() -> None:
    sample = (
        "r = services_pb2.ServiceRequest(name=n, caller=client.caller())\nservices_pb2.ServiceState.Name(1)\n"
    )
    assert sorted(what for _, what in built_messages(sample)) == [
        "caller=...",
        "client.caller()",
        "services_pb2.ServiceRequest(...)",
    ]
    found = [
        f"{path.relative_to(ROOT)}:{line} {what}"
        for door in DOORS
        for path in package_files(door)
        for line, what in built_messages(path.read_text())
    ]
    assert found == []
