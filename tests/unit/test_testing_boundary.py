"""Test gear stays out of the product: nothing the daemon or a front door runs imports voicemoded.testing,
benchmarks take their gear from there instead of from tests/, and the gear pulls in no test runner."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GEAR = ROOT / "voicemoded" / "testing"
PRODUCT = ("voicemoded", "voicemodectl", "voicemode_mcp")
DEV_ONLY = {"pytest": set(), "hypothesis": {"fuzz.py"}}
"""Development dependencies, and the gear modules allowed to import each at module level."""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(source: str, module: str, *, is_package: bool = False) -> set[str]:
    """Every module ``source`` imports (relative imports resolved against ``module``), and every string
    constant naming a module the way ``python -m`` or ``importlib`` would take it."""
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and " " not in node.value:
            found.add(node.value)
    return found


def is_under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def product_files() -> Iterator[Path]:
    for top in PRODUCT:
        for path in sorted((ROOT / top).rglob("*.py")):
            if not path.is_relative_to(GEAR) and "_pb2" not in path.name:
                yield path


def top_level_imports(tree: ast.Module) -> Iterator[str]:
    """Modules imported when the module is imported (not those imported inside a function or class)."""
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module
        elif isinstance(node, ast.If | ast.Try | ast.With):
            pending.extend(node.body)
            pending.extend(getattr(node, "orelse", []))
            pending.extend(getattr(node, "finalbody", []))
            for handler in getattr(node, "handlers", []):
                pending.extend(handler.body)


def test_the_scan_sees_every_way_of_importing_the_gear() -> None:
    """The checks below are only as good as this scan: each spelling must be found."""
    spellings = {
        "import voicemoded.testing.rig": "voicemoded.audio.devices",
        "from voicemoded.testing import demo": "voicemoded.server",
        "from voicemoded import testing": "voicemoded.server",
        "from ..testing.rig import VirtualAudioRig": "voicemoded.audio.devices",
        "from . import testing": "voicemoded",
        "def f():\n    from voicemoded.testing.ports import free_port": "voicemodectl.daemon",
        "ARGV = ['-m', 'voicemoded.testing.demo']": "voicemodectl.daemon",
    }
    for source, module in spellings.items():
        names = imported(source, module, is_package=module == "voicemoded")
        assert any(is_under(n, "voicemoded.testing") for n in names), source
    assert not any(is_under(n, "voicemoded.testing") for n in imported("import voicemoded.api", "x.y"))


def test_the_daemon_and_the_front_doors_never_import_the_gear() -> None:
    offenders = []
    for path in product_files():
        names = imported(path.read_text(), module_name(path), is_package=path.name == "__init__.py")
        offenders += [
            f"{path.relative_to(ROOT)}: {n}" for n in sorted(names) if is_under(n, "voicemoded.testing")
        ]
    assert list(product_files()), "no product modules found"
    assert not offenders, offenders


def test_benchmarks_take_nothing_from_the_tests() -> None:
    scripts = sorted((ROOT / "benchmarks").glob("*.py"))
    assert scripts
    offenders = []
    for path in scripts:
        names = imported(path.read_text(), f"benchmarks.{path.stem}")
        offenders += [f"{path.name}: {n}" for n in sorted(names) if is_under(n, "tests")]
    assert not offenders, offenders


def test_the_gear_needs_no_test_runner_to_import() -> None:
    """pytest and hypothesis are development dependencies: only the modules that need one import it."""
    offenders = []
    for path in sorted(GEAR.rglob("*.py")):
        for name in top_level_imports(ast.parse(path.read_text())):
            top = name.partition(".")[0]
            if top in DEV_ONLY and path.name not in DEV_ONLY[top]:
                offenders.append(f"{path.relative_to(ROOT)}: {name}")
    assert not offenders, offenders
