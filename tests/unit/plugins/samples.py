"""Plugin entry-point targets for the loader's tests: good ones and each kind of mistake."""

from __future__ import annotations

import sys
from typing import Any

from voicemoded.api.errors import FailedPrecondition
from voicemoded.plugins.api import (
    HttpProbe,
    Progress,
    ProviderEndpoint,
    ProviderPlugin,
    ServicePlugin,
    ServiceSpec,
    ToolPlugin,
)

OBJECT = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}


def spec(name: str = "sample", port: int = 18999, **extra: Any) -> ServiceSpec:
    command = (sys.executable, "-c", "import time; time.sleep(60)")
    return ServiceSpec(name=name, command=command, port=port, probe=HttpProbe("/health"), **extra)


installs: list[str] = []


async def install(progress: Progress) -> None:
    installs.append("ran")
    result = progress("installing sample")
    if result is not None:
        await result


async def failing_install(progress: Progress) -> None:
    raise OSError("disk on fire")


service = ServicePlugin(spec=spec(), install=install)
speech_service = ServicePlugin(spec=spec("speechy", 18998), kind="tts")
clashing_builtin_service = ServicePlugin(spec=spec("whisper"))
second_sample_service = ServicePlugin(spec=spec("sample", 18997))
no_installer_service = ServicePlugin(spec=spec("plain", 18996))
failing_installer_service = ServicePlugin(spec=spec("failing", 18995), install=failing_install)
sync_installer_service = ServicePlugin(spec=spec("syncinst", 18994), install=lambda progress: None)  # type: ignore[arg-type,return-value]

#: What ``factory_service`` builds next; tests change it to see a refresh.
factory_state: dict[str, Any] = {"port": 18990, "raise": False, "name": "made"}


def factory_service() -> ServicePlugin:
    if factory_state["raise"]:
        raise RuntimeError("factory cannot build now")
    return ServicePlugin(spec=spec(factory_state["name"], factory_state["port"]))


def not_a_declaration() -> str:
    return "a string"


wrong_group = ProviderPlugin(name="misplaced", endpoints=(ProviderEndpoint("tts", "http://127.0.0.1:9/v1"),))


def exits() -> ServicePlugin:
    raise SystemExit(3)


provider = ProviderPlugin(
    name="acme",
    endpoints=(
        ProviderEndpoint("tts", "http://127.0.0.1:18001/v1", api_key="acme-key-123"),
        ProviderEndpoint("stt", "http://127.0.0.1:18002"),
    ),
)
bad_url_provider = ProviderPlugin(name="badurl", endpoints=(ProviderEndpoint("tts", "ftp://example.org"),))
bad_kind_provider = ProviderPlugin(name="badkind", endpoints=(ProviderEndpoint("vision", "http://a:1/v1"),))  # type: ignore[arg-type]
two_tts_provider = ProviderPlugin(
    name="twotts",
    endpoints=(ProviderEndpoint("tts", "http://a:1/v1"), ProviderEndpoint("tts", "http://b:1/v1")),
)
header_injection_provider = ProviderPlugin(
    name="sneaky", endpoints=(ProviderEndpoint("tts", "http://a:1/v1", api_key="k\r\nX-Evil: 1"),)
)
cloud_name_provider = ProviderPlugin(name="openai", endpoints=(ProviderEndpoint("tts", "http://a:1/v1"),))
service_name_provider = ProviderPlugin(name="speechy", endpoints=(ProviderEndpoint("tts", "http://a:1/v1"),))
sample_name_provider = ProviderPlugin(name="sample", endpoints=(ProviderEndpoint("tts", "http://a:1/v1"),))
empty_provider = ProviderPlugin(name="empty", endpoints=())
upper_name_provider = ProviderPlugin(name="Acme", endpoints=(ProviderEndpoint("tts", "http://a:1/v1"),))


async def echo(arguments: dict[str, Any]) -> dict[str, Any]:
    return {"echo": arguments["text"]}


async def shout(arguments: dict[str, Any]) -> str:
    return str(arguments["text"]).upper()


async def explode(arguments: dict[str, Any]) -> dict[str, Any]:
    raise ZeroDivisionError("division by zero in the plugin")


async def refuse(arguments: dict[str, Any]) -> dict[str, Any]:
    raise FailedPrecondition("the lamp is off", hint="turn the lamp on")


async def not_json(arguments: dict[str, Any]) -> Any:
    return {"when": object()}


async def a_list(arguments: dict[str, Any]) -> Any:
    return [1, 2]


class AsyncCallable:
    async def __call__(self, arguments: dict[str, Any]) -> str:
        return "called"


def sync_handler(arguments: dict[str, Any]) -> dict[str, Any]:
    return {}


tool = ToolPlugin(name="echo", description="Echo text.", input_schema=OBJECT, handler=echo)
shout_tool = ToolPlugin(name="shout.loud", description="Shout text.", input_schema=OBJECT, handler=shout)
exploding_tool = ToolPlugin(name="explode", description="Fails.", input_schema=OBJECT, handler=explode)
refusing_tool = ToolPlugin(name="refuse", description="Refuses.", input_schema=OBJECT, handler=refuse)
not_json_tool = ToolPlugin(name="notjson", description="Bad result.", input_schema=OBJECT, handler=not_json)
list_tool = ToolPlugin(name="alist", description="Bad result.", input_schema=OBJECT, handler=a_list)
callable_tool = ToolPlugin(
    name="callme", description="Callable.", input_schema=OBJECT, handler=AsyncCallable()
)
builtin_clash_tool = ToolPlugin(name="converse", description="Mine.", input_schema=OBJECT, handler=echo)
second_echo_tool = ToolPlugin(name="echo", description="Echo again.", input_schema=OBJECT, handler=echo)
bad_schema_tool = ToolPlugin(
    name="badschema", description="Bad.", input_schema={"type": "object", "properties": 5}, handler=echo
)
array_schema_tool = ToolPlugin(
    name="arrays", description="Bad.", input_schema={"type": "array"}, handler=echo
)
sync_tool = ToolPlugin(name="synchronous", description="Sync.", input_schema=OBJECT, handler=sync_handler)  # type: ignore[arg-type]
spaced_name_tool = ToolPlugin(name="has space", description="Bad name.", input_schema=OBJECT, handler=echo)
no_description_tool = ToolPlugin(name="quiet", description=" ", input_schema=OBJECT, handler=echo)
