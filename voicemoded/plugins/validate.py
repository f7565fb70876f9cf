"""Checks on what a plugin gave, before the daemon uses any of it: each returns the problems found.

A declaration is refused as a whole when anything is wrong with it: a half-loaded plugin would fail
later, in the middle of a call, where the person can no longer tell which plugin was at fault.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Container, Mapping

from voicemoded.config.parsers import parse_urls
from voicemoded.plugins.api import KINDS, ProviderEndpoint, ProviderPlugin, ServicePlugin, ToolPlugin
from voicemoded.supervisor.spec import ServiceSpec

#: MCP clients accept tool names of these characters; 64 keeps them within every client's limit.
TOOL_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
#: Provider names are endpoint names in ``provider list`` and values of ``tts_provider``.
PROVIDER_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
#: The registry's name for the cloud endpoint.
CLOUD_NAME = "openai"
DESCRIPTION_CHARS = 1024
_HEADER_SAFE = re.compile(r"^[\x21-\x7e]*$")


def is_async_callable(value: object) -> bool:
    """An ``async def`` function, or an object whose ``__call__`` is one."""
    if inspect.iscoroutinefunction(value):
        return True
    call = getattr(value, "__call__", None)  # noqa: B004 (a bound async __call__ is what is asked)
    return call is not None and inspect.iscoroutinefunction(call)


def service_problems(plugin: ServicePlugin, taken: Container[str]) -> list[str]:
    if not isinstance(plugin.spec, ServiceSpec):
        return [f"spec must be a ServiceSpec, not {type(plugin.spec).__name__}"]
    problems = []
    name = plugin.spec.name
    if name in taken:
        problems.append(f"service name {name!r} is already taken")
    if plugin.kind is not None and plugin.kind not in KINDS:
        problems.append(f"kind must be stt, tts or None, not {plugin.kind!r}")
    if plugin.kind is not None and plugin.spec.port is None:
        problems.append("a speech service (kind stt or tts) needs a port")
    if plugin.install is not None and not is_async_callable(plugin.install):
        problems.append("install must be an async function taking a progress callback")
    return problems


def provider_problems(plugin: ProviderPlugin, taken: Container[str]) -> list[str]:
    problems = []
    if not isinstance(plugin.name, str) or not PROVIDER_NAME.match(plugin.name):
        problems.append(f"provider name {plugin.name!r} must be lowercase letters, digits, '-' or '_'")
    elif plugin.name in taken or plugin.name == CLOUD_NAME:
        problems.append(f"provider name {plugin.name!r} is already taken")
    endpoints = plugin.endpoints
    if not isinstance(endpoints, tuple | list) or not endpoints:
        return [*problems, "endpoints must be a non-empty tuple of ProviderEndpoint"]
    kinds = [getattr(e, "kind", None) for e in endpoints]
    for endpoint in endpoints:
        problems += _endpoint_problems(endpoint)
    if len(set(kinds)) != len(kinds):
        problems.append("at most one endpoint per kind (stt, tts)")
    return problems


def _endpoint_problems(endpoint: object) -> list[str]:
    if not isinstance(endpoint, ProviderEndpoint):
        return [f"an endpoint must be a ProviderEndpoint, not {type(endpoint).__name__}"]
    problems = []
    if endpoint.kind not in KINDS:
        problems.append(f"endpoint kind must be stt or tts, not {endpoint.kind!r}")
    try:
        if len(parse_urls(str(endpoint.base_url))) != 1:
            problems.append("base_url must be one URL")
    except ValueError as exc:
        problems.append(str(exc))
    if not isinstance(endpoint.api_key, str) or not _HEADER_SAFE.match(endpoint.api_key):
        problems.append("api_key must be printable ASCII without spaces")
    return problems


def tool_problems(plugin: ToolPlugin, taken: Container[str]) -> list[str]:
    problems = []
    if not isinstance(plugin.name, str) or not TOOL_NAME.match(plugin.name):
        problems.append(f"tool name {plugin.name!r} must be 1-64 letters, digits, '_', '-' or '.'")
    elif plugin.name in taken:
        problems.append(f"tool name {plugin.name!r} is already taken")
    if not isinstance(plugin.description, str) or not plugin.description.strip():
        problems.append("description must be a non-empty string")
    elif len(plugin.description) > DESCRIPTION_CHARS:
        problems.append(f"description is over {DESCRIPTION_CHARS} characters")
    problems += schema_problems(plugin.input_schema)
    if not is_async_callable(plugin.handler):
        problems.append("handler must be an async function taking the arguments dict")
    return problems


def schema_problems(schema: object) -> list[str]:
    """An ``object`` JSON Schema (what MCP requires of ``inputSchema``) that is itself valid."""
    import jsonschema

    if not isinstance(schema, Mapping):
        return [f"input_schema must be a JSON Schema object, not {type(schema).__name__}"]
    if schema.get("type") != "object":
        return ['input_schema must have "type": "object"']
    try:
        json.dumps(schema)
        jsonschema.Draft202012Validator.check_schema(dict(schema))
    except (TypeError, ValueError) as exc:
        return [f"input_schema is not JSON: {exc}"]
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.path)
        return [f"input_schema is not a valid JSON Schema{' at ' + where if where else ''}: {exc.message}"]
    return []
