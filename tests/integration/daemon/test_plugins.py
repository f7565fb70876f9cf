"""A plugin package installed for real (pip, into a folder of its own) and loaded by a process that has
that folder on its PYTHONPATH: the loader finds it through the package metadata, the supervisor runs its
service as a real child, its tool answers, and its broken entry point is reported while the rest loads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.example_plugin import DISTRIBUTION, VERSION, install_example_plugin
from voicemoded.testing.ports import free_port

#: Run in a process of its own: load the installed plugins, install and start the plugin's service under
#: a real supervisor, call the tool, and print what happened as JSON.
HOST = textwrap.dedent(
    """
    import asyncio, json, sys, urllib.request
    from pathlib import Path

    from voicemoded.config.parsers import SERVICE_NAMES
    from voicemoded.events import EventBus
    from voicemoded.plugins.loader import load_plugins
    from voicemoded.plugins.selection import parse_plugins
    from voicemoded.supervisor.states import ServiceState
    from voicemoded.supervisor.supervisor import Supervisor

    TOOL_NAMES = ("converse", "service", "providers", "devices", "config", "statistics")

    async def main() -> None:
        root, selection = Path(sys.argv[1]), parse_plugins(sys.argv[2])
        bus = EventBus()
        plugins = load_plugins(selection, builtin_services=SERVICE_NAMES, builtin_tools=TOOL_NAMES, events=bus)
        out = {
            "report": [info.as_dict() for info in plugins.report()],
            "failed_events": [e.message for e in bus.recent() if e.kind == "plugin.failed"],
            "services": plugins.service_names(),
            "tools": [[t.name, t.description, t.input_schema] for t in plugins.tools],
            "endpoints": plugins.speech_endpoints(),
        }
        if not plugins.services:
            print(json.dumps(out))
            return
        [before] = plugins.service_specs()
        lines = []
        await plugins.install("example", lines.append)
        [spec] = plugins.service_specs()
        out.update(before=before.not_installed is not None, after=spec.not_installed is not None, lines=lines)
        supervisor = Supervisor([spec], logs_dir=root / "logs", run_dir=root / "run", state_dir=root / "state")
        async with supervisor:
            status = await supervisor.start_and_wait("example", 15)
            out["state"] = str(status.state)
            url = f"http://127.0.0.1:{spec.port}/health"
            out["health"] = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).status)
            out["tool"] = await plugins.call_tool("example_echo", {"text": "hello"})
            out["backend"] = spec.backend
        out["stopped"] = str(supervisor.get("example").state)
        print(json.dumps(out))

    asyncio.run(main())
    """
)


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_example_plugin(tmp_path_factory.mktemp("example-plugin"))


def run_host(site: Path, root: Path, selection: str = "all") -> dict[str, Any]:
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p),
        "EXAMPLE_PLUGIN_PORT": str(port),
        "EXAMPLE_PLUGIN_STATE": str(root / "plugin-state"),
        "EXAMPLE_PLUGIN_TTS_URL": "http://127.0.0.1:18932/v1",
    }
    done = subprocess.run(
        [sys.executable, "-c", HOST, str(root), selection],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["port"] = port
    return result


def test_the_installed_plugin_is_found_loaded_and_runs(plugin_site: Path, tmp_path: Path) -> None:
    out = run_host(plugin_site, tmp_path)
    report = {info["name"]: info for info in out["report"]}
    assert set(report) == {"example-service", "example-echo", "example-provider", "example-broken"}
    for name in ("example-service", "example-echo", "example-provider"):
        assert report[name]["state"] == "loaded", report[name]
        assert (report[name]["distribution"], report[name]["version"]) == (DISTRIBUTION, VERSION)
    broken = report["example-broken"]
    assert broken["state"] == "failed" and broken["group"] == "voicemode.providers"
    assert broken["error"] == "RuntimeError: the example plugin's broken entry point fails on purpose"
    assert (broken["distribution"], broken["version"]) == (DISTRIBUTION, VERSION)
    assert len(out["failed_events"]) == 1 and "example-broken" in out["failed_events"][0]
    assert report["example-service"]["provides"] == "example"
    assert report["example-echo"]["provides"] == "example_echo"

    # The service: not installed until its installer ran, then a real child that passes its health check.
    assert out["services"] == ["example"]
    assert (out["before"], out["after"]) == (True, False)
    assert out["lines"] == [f"writing {tmp_path / 'plugin-state' / 'installed'}"]
    assert out["state"] == "RUNNING" and out["health"] == 200 and out["backend"] == "example-plugin"
    assert out["stopped"] == "STOPPED"

    # The tool ran in the loading process; the provider's endpoint is there for the registry.
    [[name, description, schema]] = out["tools"]
    assert name == "example_echo" and description.startswith("Echo") and schema["required"] == ["text"]
    assert out["tool"]["echo"] == "hello" and isinstance(out["tool"]["pid"], int)
    assert out["endpoints"] == {"stt": {}, "tts": {"example": "http://127.0.0.1:18932/v1"}}


def test_only_the_selected_entry_points_load(plugin_site: Path, tmp_path: Path) -> None:
    out = run_host(plugin_site, tmp_path, "example-echo")
    states = {info["name"]: info["state"] for info in out["report"]}
    assert states == {
        "example-service": "disabled",
        "example-echo": "loaded",
        "example-provider": "disabled",
        "example-broken": "disabled",  # not imported at all, so it cannot fail
    }
    assert out["services"] == [] and [t[0] for t in out["tools"]] == ["example_echo"]
    assert out["failed_events"] == []


def test_the_shared_environment_does_not_see_the_plugin(plugin_site: Path) -> None:
    from importlib.metadata import entry_points

    names = {
        ep.name for group in ("voicemode.services", "voicemode.tools") for ep in entry_points(group=group)
    }
    assert not names & {"example-service", "example-echo"}
