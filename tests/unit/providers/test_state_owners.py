"""An endpoint's live state has two owners, the registry and the health tracker; nothing else writes it.

The state is frozen, so a plain assignment fails wherever it is written; the source scan below catches
the ways around that (the owners' writer, another object's breaker, ``object.__setattr__``) anywhere in
the product, so a change of health cannot bypass the one place that logs and publishes it.
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

import voicemoded
from voicemoded.providers.breaker import Breaker, BreakerPolicy
from voicemoded.providers.endpoint import Endpoint, EndpointState, Source, StateChange, update_state

ROOT = Path(voicemoded.__file__).parent.parent
PACKAGES = ("voicemoded", "voicemodectl", "voicemode_mcp")
WRITER = "voicemoded/providers/endpoint.py"
OWNERS = frozenset({"voicemoded/providers/registry.py", "voicemoded/providers/health.py"})
BREAKER_OWNER = "voicemoded/providers/health.py"
#: Breaker methods that change it (``ready`` and ``retry_in`` only read).
BREAKER_CHANGES = frozenset({"allow", "force_trial", "release", "record_success", "record_failure", "reset"})


def _is_name(node: ast.expr, name: str) -> bool:
    return isinstance(node, ast.Name) and node.id == name


def _hit(node: ast.AST, module: str) -> str | None:
    """What ``node`` writes of endpoint state that ``module`` does not own, if anything."""
    name = node.id if isinstance(node, ast.Name) else node.name if isinstance(node, ast.alias) else ""
    if name == "update_state" and module not in OWNERS | {WRITER}:
        return "uses update_state"
    if isinstance(node, ast.Call) and _is_name(node.func, "EndpointState"):
        return None if module == "voicemoded/providers/registry.py" else "builds an EndpointState"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        func, receiver = node.func, node.func.value
        others_breaker = (
            isinstance(receiver, ast.Attribute)
            and receiver.attr == "breaker"
            and not _is_name(receiver.value, "self")
        )
        if others_breaker and func.attr in BREAKER_CHANGES and module != BREAKER_OWNER:
            return f"{func.attr}() on another object's breaker"
        in_providers = module.startswith("voicemoded/providers/") and module != WRITER
        if func.attr == "__setattr__" and _is_name(receiver, "object") and in_providers:
            return "object.__setattr__"
    targets = (
        node.targets
        if isinstance(node, ast.Assign)
        else [node.target]
        if isinstance(node, ast.AugAssign | ast.AnnAssign)
        else []
    )
    for target in targets:
        if (
            isinstance(target, ast.Attribute)
            and isinstance(target.value, ast.Attribute)
            and target.value.attr == "breaker"
        ):
            return f"assigns breaker.{target.attr}"
    return None


def writes(source: str, module: str) -> list[str]:
    """Where ``module`` writes endpoint state it does not own, as ``line: what``."""
    return [
        f"{getattr(node, 'lineno', 0)}: {hit}"
        for node in ast.walk(ast.parse(source))
        if (hit := _hit(node, module)) is not None
    ]


def test_only_the_registry_and_the_health_tracker_write_endpoint_state() -> None:
    offenders, scanned = [], []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            module = path.relative_to(ROOT).as_posix()
            if "_pb2" in module:
                continue
            scanned.append(module)
            offenders += [f"{module}:{hit}" for hit in writes(path.read_text(), module)]
    assert {"voicemoded/providers/failover.py", "voicemoded/__main__.py"} <= set(scanned)
    assert offenders == []


@pytest.mark.parametrize(
    "source",
    [
        "from voicemoded.providers.endpoint import update_state\nupdate_state(state, health=h)",
        "state.breaker.record_failure(hard=True)",
        "speech.registry.states('tts')[0].breaker.reset()",
        "state.breaker.opened_at -= 5",
        "object.__setattr__(state, 'health', h)",
        "EndpointState(endpoint, Breaker(policy))",
    ],
)
def test_the_scan_sees_each_way_around_the_owners(source: str) -> None:
    assert writes(source, "voicemoded/providers/failover.py")
    assert not writes("self.breaker.record_failure(hard=True)\nstate.breaker.ready()", "voicemoded/x.py")


def test_endpoint_state_refuses_assignment_to_every_field() -> None:
    endpoint = Endpoint(url="http://127.0.0.1:1/v1", kind="tts", source=Source.LOCAL, name="piper")
    state = EndpointState(endpoint, Breaker(BreakerPolicy()))
    for field in dataclasses.fields(EndpointState):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(state, field.name, getattr(state, field.name))
    update_state(state, in_flight=2, last_error="boom")
    assert (state.in_flight, state.last_error) == (2, "boom")


def test_the_owners_may_change_every_field_but_identity() -> None:
    changeable = StateChange.__required_keys__ | StateChange.__optional_keys__
    assert changeable == {f.name for f in dataclasses.fields(EndpointState)} - {"endpoint", "breaker"}
