"""The plugin loader: what it accepts, what it refuses (and says why), and that it never raises."""

from __future__ import annotations

from collections.abc import Iterable
from importlib.metadata import EntryPoint
from typing import Any

import pytest

from tests.unit.plugins import samples
from voicemoded.api.errors import ErrorCode, FailedPrecondition, InvalidArgument, NotFound, Unavailable
from voicemoded.api.errors import VoicemodeError as Error
from voicemoded.api.v1 import daemon_pb2
from voicemoded.events import EventBus
from voicemoded.plugins.api import GROUP_PROVIDERS, GROUP_SERVICES, GROUP_TOOLS
from voicemoded.plugins.loaded import Plugins
from voicemoded.plugins.loader import load_plugins
from voicemoded.plugins.report import PluginInfo

BUILTIN_SERVICES = ("whisper", "kokoro", "piper", "livekit", "web")
BUILTIN_TOOLS = ("converse", "service", "providers", "devices", "config", "statistics")
MOD = "tests.unit.plugins.samples"


def eps(group: str, **targets: str) -> list[EntryPoint]:
    return [
        EntryPoint(name, value if ":" in value else f"{MOD}:{value}", group)
        for name, value in targets.items()
    ]


def load(
    services: dict[str, str] | None = None,
    providers: dict[str, str] | None = None,
    tools: dict[str, str] | None = None,
    selection: tuple[str, ...] = ("all",),
    events: EventBus | None = None,
) -> Plugins:
    by_group = {
        GROUP_SERVICES: eps(GROUP_SERVICES, **(services or {})),
        GROUP_PROVIDERS: eps(GROUP_PROVIDERS, **(providers or {})),
        GROUP_TOOLS: eps(GROUP_TOOLS, **(tools or {})),
    }

    def discover(group: str) -> Iterable[EntryPoint]:
        return by_group[group]

    return load_plugins(
        selection,
        builtin_services=BUILTIN_SERVICES,
        builtin_tools=BUILTIN_TOOLS,
        events=events,
        discover=discover,
    )


def by_name(plugins: Plugins) -> dict[str, PluginInfo]:
    return {info.name: info for info in plugins.report()}


def test_good_plugins_of_every_group_load() -> None:
    plugins = load(
        services={"sample": "service", "made": "factory_service"},
        providers={"acme": "provider"},
        tools={"echo": "tool", "callme": "callable_tool"},
    )
    report = by_name(plugins)
    assert {name: info.state for name, info in report.items()} == dict.fromkeys(
        ("sample", "made", "acme", "echo", "callme"), "loaded"
    )
    assert report["sample"].provides == "sample" and report["sample"].group == GROUP_SERVICES
    assert report["sample"].target == f"{MOD}:service"
    assert [s.name for s in plugins.service_specs()] == ["made", "sample"]  # group, then entry-point name
    assert [t.name for t in plugins.tools] == ["callme", "echo"]
    assert plugins.tool("echo") is not None and plugins.tool("nope") is None


def test_a_plugin_that_fails_to_import_is_reported_and_the_rest_load() -> None:
    plugins = load(
        services={"sample": "service"},
        providers={"broken": "tests.unit.plugins.broken_sample:provider"},
        tools={"echo": "tool"},
    )
    report = by_name(plugins)
    assert report["broken"].state == "failed"
    assert "ModuleNotFoundError" in report["broken"].error and "frobnicate" in report["broken"].error
    assert report["sample"].state == report["echo"].state == "loaded"
    assert plugins.providers == ()


@pytest.mark.parametrize(
    ("group", "target", "expected"),
    [
        (GROUP_SERVICES, "not_a_declaration", "expected a ServicePlugin (or a factory of one), got str"),
        (GROUP_SERVICES, "wrong_group", "expected a ServicePlugin (or a factory of one), got ProviderPlugin"),
        (GROUP_SERVICES, "exits", "SystemExit: 3"),
        (GROUP_SERVICES, "no_such_attribute", "AttributeError"),
        (GROUP_SERVICES, "clashing_builtin_service", "service name 'whisper' is already taken"),
        (GROUP_SERVICES, "sync_installer_service", "install must be an async function"),
        (GROUP_PROVIDERS, "bad_url_provider", "is not an http(s) URL"),
        (GROUP_PROVIDERS, "bad_kind_provider", "endpoint kind must be stt or tts, not 'vision'"),
        (GROUP_PROVIDERS, "two_tts_provider", "at most one endpoint per kind"),
        (GROUP_PROVIDERS, "header_injection_provider", "api_key must be printable ASCII"),
        (GROUP_PROVIDERS, "cloud_name_provider", "provider name 'openai' is already taken"),
        (GROUP_PROVIDERS, "empty_provider", "endpoints must be a non-empty tuple"),
        (GROUP_PROVIDERS, "upper_name_provider", "must be lowercase letters"),
        (GROUP_TOOLS, "builtin_clash_tool", "tool name 'converse' is already taken"),
        (GROUP_TOOLS, "bad_schema_tool", "input_schema is not a valid JSON Schema at properties"),
        (GROUP_TOOLS, "array_schema_tool", 'input_schema must have "type": "object"'),
        (GROUP_TOOLS, "sync_tool", "handler must be an async function"),
        (GROUP_TOOLS, "spaced_name_tool", "tool name 'has space' must be 1-64 letters"),
        (GROUP_TOOLS, "no_description_tool", "description must be a non-empty string"),
    ],
)
def test_a_bad_declaration_is_refused_with_the_reason(group: str, target: str, expected: str) -> None:
    key = {GROUP_SERVICES: "services", GROUP_PROVIDERS: "providers", GROUP_TOOLS: "tools"}[group]
    plugins = load(**{key: {"bad": target}})  # type: ignore[arg-type]
    [info] = plugins.report()
    assert info.state == "failed", info
    assert expected in info.error
    assert not plugins.services and not plugins.providers and not plugins.tools


def test_the_first_of_two_clashing_plugins_wins_by_name_order() -> None:
    plugins = load(
        services={"b-second": "second_sample_service", "a-first": "service"},
        tools={"z-echo": "second_echo_tool", "y-echo": "tool"},
    )
    report = by_name(plugins)
    assert report["a-first"].state == "loaded" and report["y-echo"].state == "loaded"
    assert report["b-second"].error == "service name 'sample' is already taken"
    assert report["z-echo"].error == "tool name 'echo' is already taken"
    assert plugins.service_specs()[0].port == samples.service.spec.port


def test_endpoint_names_are_unique_across_speech_services_and_providers() -> None:
    plugins = load(services={"speechy": "speech_service"}, providers={"p": "service_name_provider"})
    assert by_name(plugins)["p"].error == "provider name 'speechy' is already taken"
    # A service that is no speech server has no endpoint: a provider may share its name.
    plugins = load(services={"sample": "service"}, providers={"p": "sample_name_provider"})
    assert by_name(plugins)["p"].state == "loaded"


def test_health_says_which_failed() -> None:
    assert load(services={"sample": "service"}).health().state == "ok"
    assert load().health().state == "disabled"
    mixed = load(services={"sample": "service"}, tools={"bad": "sync_tool"}).health()
    assert (mixed.state, mixed.detail) == ("degraded", "failed: bad; loaded: sample")


def test_selection_none_disables_everything_and_a_list_only_those_named() -> None:
    targets: dict[str, Any] = {
        "services": {"sample": "service"},
        "tools": {"echo": "tool", "shout": "shout_tool"},
    }
    nothing = load(**targets, selection=("none",))
    assert {i.state for i in nothing.report()} == {"disabled"}
    assert not nothing.services and not nothing.tools

    some = load(**targets, selection=("echo", "missing"))
    report = by_name(some)
    assert report["echo"].state == "loaded"
    assert report["sample"].state == report["shout"].state == "disabled"
    assert report["missing"].state == "failed"
    assert "no installed package" in report["missing"].error


def test_a_failure_is_published_on_the_event_bus() -> None:
    bus = EventBus()
    load(tools={"bad": "sync_tool"}, events=bus)
    [event] = [e for e in bus.recent() if e.kind == "plugin.failed"]
    assert event.subsystem == "plugins" and event.level == "warning"
    assert event.fields["plugin"] == "bad" and "handler must be" in event.fields["error"]


def test_an_unreadable_group_is_reported_not_raised() -> None:
    def discover(group: str) -> Iterable[EntryPoint]:
        if group == GROUP_TOOLS:
            raise ValueError("bad metadata")
        return []

    plugins = load_plugins(builtin_services=(), builtin_tools=(), discover=discover)
    [info] = plugins.report()
    assert info.state == "failed" and info.group == GROUP_TOOLS and "bad metadata" in info.error


def test_plugin_info_wire_form() -> None:
    info = PluginInfo("x", GROUP_TOOLS, "dist", "1.0", "failed", "boom", "tool-x", "m:a")
    wire = info.to_proto()
    assert wire.state == daemon_pb2.PluginInfo.FAILED
    assert (wire.name, wire.group, wire.distribution, wire.version) == ("x", GROUP_TOOLS, "dist", "1.0")
    assert (wire.error, wire.provides, wire.target) == ("boom", "tool-x", "m:a")
    status = daemon_pb2.Status(plugins=[wire])
    assert daemon_pb2.Status.FromString(status.SerializeToString()).plugins[0] == wire
    assert PluginInfo("y", GROUP_TOOLS).as_dict() == {"name": "y", "group": GROUP_TOOLS, "state": "loaded"}


# --- services ----------------------------------------------------------------------------------------


def test_a_factory_is_asked_again_on_refresh_and_a_failing_one_keeps_the_last_spec() -> None:
    samples.factory_state.update(port=18990, name="made", **{"raise": False})
    plugins = load(services={"made": "factory_service"})
    assert plugins.service_specs()[0].port == 18990

    samples.factory_state["port"] = 18991
    assert plugins.service_specs()[0].port == 18991

    samples.factory_state["raise"] = True
    assert plugins.service_specs()[0].port == 18991
    [info] = plugins.report()
    assert info.state == "loaded" and "factory cannot build now" in info.error

    samples.factory_state.update(name="renamed", **{"raise": False})
    assert plugins.service_specs()[0].name == "made"
    assert "renamed from 'made' to 'renamed'" in plugins.report()[0].error

    samples.factory_state.update(name="made", port=18992)
    assert plugins.service_specs()[0].port == 18992
    assert plugins.report()[0].error == ""


async def test_install_runs_the_plugins_hook_and_reports_its_failures() -> None:
    plugins = load(
        services={"s": "service", "plain": "no_installer_service", "failing": "failing_installer_service"}
    )
    lines: list[str] = []
    samples.installs.clear()
    await plugins.install("sample", lines.append)
    assert samples.installs == ["ran"] and lines == ["installing sample"]

    with pytest.raises(FailedPrecondition, match="has no installer"):
        await plugins.install("plain", lines.append)
    with pytest.raises(Unavailable, match="installing failing failed: OSError: disk on fire"):
        await plugins.install("failing", lines.append)
    with pytest.raises(NotFound):
        await plugins.install("whisper", lines.append)


def test_speech_endpoints_hold_providers_and_running_speech_services() -> None:
    plugins = load(services={"speechy": "speech_service", "s": "service"}, providers={"acme": "provider"})
    statuses = [("speechy", "127.0.0.1", 18998, True), ("sample", "127.0.0.1", 18999, True)]
    assert plugins.speech_endpoints(statuses) == {
        "stt": {"acme": "http://127.0.0.1:18002"},
        "tts": {"acme": "http://127.0.0.1:18001/v1", "speechy": "http://127.0.0.1:18998/v1"},
    }
    stopped = [("speechy", "127.0.0.1", 18998, False)]
    assert "speechy" not in plugins.speech_endpoints(stopped)["tts"]
    assert plugins.endpoint_keys() == {("tts", "acme"): "acme-key-123"}
    assert "acme-key-123" not in repr(plugins.providers)


# --- tools -------------------------------------------------------------------------------------------


async def test_a_tool_call_checks_arguments_and_returns_what_the_handler_gave() -> None:
    plugins = load(tools={"echo": "tool", "shout": "shout_tool", "callme": "callable_tool"})
    assert await plugins.call_tool("echo", {"text": "hi"}) == {"echo": "hi"}
    assert await plugins.call_tool("shout.loud", {"text": "hi"}) == "HI"
    assert await plugins.call_tool("callme", {"text": "x"}) == "called"
    with pytest.raises(InvalidArgument, match=r"echo: 'text' is a required property") as missing:
        await plugins.call_tool("echo", {})
    assert "input schema" in missing.value.hint
    with pytest.raises(InvalidArgument, match=r"echo: text: 5 is not of type 'string'"):
        await plugins.call_tool("echo", {"text": 5})
    with pytest.raises(NotFound):
        await plugins.call_tool("converse", {})


async def test_a_tool_failure_is_the_plugins_and_says_so() -> None:
    plugins = load(
        tools={"x": "exploding_tool", "r": "refusing_tool", "n": "not_json_tool", "l": "list_tool"}
    )
    with pytest.raises(Error) as exploded:
        await plugins.call_tool("explode", {"text": ""})
    assert exploded.value.code is ErrorCode.INTERNAL
    assert exploded.value.message == "tool explode failed: ZeroDivisionError: division by zero in the plugin"
    assert "plugin" in exploded.value.hint and exploded.value.fields["plugin"] == "x"

    with pytest.raises(FailedPrecondition, match="the lamp is off") as refused:
        await plugins.call_tool("refuse", {"text": ""})
    assert refused.value.hint == "turn the lamp on"

    for name in ("notjson", "alist"):
        with pytest.raises(Error, match=f"tool {name} returned something that is not JSON"):
            await plugins.call_tool(name, {"text": ""})


def test_a_tools_schema_is_a_private_copy() -> None:
    plugins = load(tools={"echo": "tool"})
    tool = plugins.tool("echo")
    assert tool is not None
    samples.OBJECT["required"].append("later")  # type: ignore[attr-defined]
    try:
        assert tool.input_schema["required"] == ["text"]
    finally:
        samples.OBJECT["required"].remove("later")  # type: ignore[attr-defined]


def test_a_plugin_that_hangs_while_importing_is_skipped_and_the_others_load() -> None:
    by_group = {
        GROUP_SERVICES: eps(GROUP_SERVICES, stuck="tests.unit.plugins.hanging_sample:plugin"),
        GROUP_PROVIDERS: [],
        GROUP_TOOLS: eps(GROUP_TOOLS, echo="tool"),
    }
    plugins = load_plugins(
        builtin_services=BUILTIN_SERVICES, builtin_tools=BUILTIN_TOOLS,
        discover=lambda group: by_group[group], import_timeout=0.3,
    )  # fmt: skip
    report = by_name(plugins)
    assert report["stuck"].state == "failed"
    assert "did not finish importing within 0.3 s" in report["stuck"].error
    assert report["echo"].state == "loaded"
