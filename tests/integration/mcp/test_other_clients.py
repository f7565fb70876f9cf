"""The door with MCP clients nobody here wrote: the MCP Inspector's CLI and Claude Code's `claude mcp list`.

Both are TypeScript SDK clients (the Python SDK is tested everywhere else), installed from npm by
scripts/setup.sh into a cache outside the clone; both run offline. A missing tool fails these tests: setup
installs it, so its absence is a broken setup, not a reason to test less.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from voicemoded.mcp.tools import TOOLS
from voicemoded.testing.daemon import DaemonHandle

NODE_TOOLS = Path(os.environ.get("VOICEMODE_NODE_TOOLS") or Path.home() / ".cache" / "voicemode-node-tools")
BIN = NODE_TOOLS / "node_modules" / ".bin"
#: No update checks, telemetry or other traffic from Claude Code: the health check must work offline.
QUIET = {
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_AUTOUPDATER": "1",
}


def tool(name: str) -> Path:
    path = BIN / name
    assert path.exists(), f"{path} is missing: run scripts/setup.sh (it installs the MCP test clients)"
    return path


def door(handle: DaemonHandle, socket: Path | None = None) -> list[str]:
    return [sys.executable, "-m", "voicemode_mcp", "--socket", str(socket or handle.socket), "--no-start"]


def inspector(handle: DaemonHandle, *method: str) -> subprocess.CompletedProcess[str]:
    cli = tool("mcp-inspector-cli")
    # Inspector CLI 1.0.3 looks for its package.json relative to the working directory (a bug upstream);
    # from its own build folder that lookup finds it.
    return subprocess.run(
        [str(cli), "--cli", *door(handle), "--method", *method],
        cwd=cli.resolve().parent,
        env={**handle.env, **QUIET},
        capture_output=True,
        text=True,
        timeout=120,
    )


def output_json(done: subprocess.CompletedProcess[str]) -> dict:
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout[done.stdout.index("{") :])


def test_inspector_lists_and_calls_tools(host: DaemonHandle) -> None:
    listed = output_json(inspector(host, "tools/list"))
    assert [t["name"] for t in listed["tools"]] == [t.name for t in TOOLS]
    called = output_json(
        inspector(host, "tools/call", "--tool-name", "converse", "--tool-arg", "message=hello")
    )
    assert called["isError"] is False
    assert json.loads(called["content"][0]["text"])["text"] == "heard: hello"


def test_inspector_gets_a_protocol_error_for_an_unknown_tool(host: DaemonHandle) -> None:
    done = inspector(host, "tools/call", "--tool-name", "no_such_tool")
    assert done.returncode == 1
    assert "MCP error -32602: Unknown tool: no_such_tool" in done.stdout + done.stderr


@pytest.fixture
def claude_home(host: DaemonHandle, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A private HOME and project for Claude Code, with the door added as it is in the README."""
    home, project = tmp_path / "home", tmp_path / "project"
    home.mkdir()
    project.mkdir()
    env = {**host.env, **QUIET, "HOME": str(home)}
    claude = str(tool("claude"))
    servers = {"voicemode": door(host), "voicemode-down": door(host, tmp_path / "no-daemon.sock")}
    for name, command in servers.items():
        added = subprocess.run(
            [claude, "mcp", "add", name, "--", *command],
            cwd=project, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert added.returncode == 0, added.stdout + added.stderr
    return project, env


def test_claude_mcp_list_connects(claude_home: tuple[Path, dict[str, str]]) -> None:
    project, env = claude_home
    done = subprocess.run(
        [str(tool("claude")), "mcp", "list"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = {line.split(":", 1)[0]: line for line in done.stdout.splitlines() if ": " in line}
    assert "✔ Connected" in lines["voicemode"], done.stdout
    # With no daemon the door still answers `initialize`, with the reason and the fix Claude shows.
    down = lines["voicemode-down"]
    assert "Failed to connect" in down and "voicemoded is not running" in down, done.stdout
    assert "voicemodectl daemon start" in down
