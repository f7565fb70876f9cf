"""The web door's pages in a real browser (Debian's Chromium, headless, driven by Playwright) against a
real daemon with the embedded Whisper and Piper engines on virtual audio devices, a real LiveKit server
and a real voicemode-web process.

One browser, one daemon and one door serve the module (starting the engines is the slow part). Chromium's
fake microphone says the scripted person's answer each time a page opens it; the talk page opens it when
the daemon starts listening, so the answer comes at the same moment of every run. Each page's screenshot
goes to test-artifacts/screenshots/ (and docs/screenshots/, which the README shows).
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import tempfile
import threading
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from tests.integration.conversation.conftest import Rig, Turn
from tests.integration.web.conftest import DoorAndDaemon, WebDoor, running_door
from voicemoded.api.v1 import conversation_pb2, services_pb2
from voicemoded.testing.daemon import DaemonHandle, engines_daemon
from voicemoded.testing.livekit import LiveKitServer, absent_reason, running_livekit, server_binary
from voicemoded.testing.person import Voice
from voicemoded.testing.processes import stop_group

pytestmark = [pytest.mark.slow, pytest.mark.audio, pytest.mark.engines]

REPO = Path(__file__).resolve().parents[3]
ARTIFACTS = REPO / "test-artifacts" / "screenshots"
DOCS = REPO / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
QUESTION = "Which file should I open first?"
ANSWER = "Please open the settings file and check the port number."
TALK_ANSWER = "I would like a cup of tea please."
ROOM_LEAD_S = 1.0
"""Silence before the fake microphone's answer: the time its track takes to reach the daemon."""
ROOM_TAIL_S = 10.0
"""Silence after it: the turn ends long before Chromium loops the file."""

needs_livekit = pytest.mark.skipif(server_binary() is None, reason=absent_reason())


@dataclass
class Stack:
    rig: Rig
    door: WebDoor
    livekit: LiveKitServer | None

    @property
    def daemon(self) -> DaemonHandle:
        return self.rig.daemon


def write_wav(path: Path, pcm: bytes, rate: int) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm)
    return path


@pytest.fixture(scope="module")
def livekit() -> Iterator[LiveKitServer | None]:
    if server_binary() is None:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="vm-lk-") as folder, running_livekit(Path(folder)) as server:
        yield server


@pytest.fixture(scope="module")
def stack(voice: Voice, livekit: LiveKitServer | None) -> Iterator[Stack]:
    room = {}
    if livekit is not None:
        room = {
            "LIVEKIT_URL": livekit.url,
            "LIVEKIT_API_KEY": livekit.api_key,
            "LIVEKIT_API_SECRET": livekit.api_secret,
        }
    env = {
        **room,
        "VOICEMODE_SAVE_AUDIO": "true",
        # Kokoro as an external program that is not there: a service that cannot start.
        "VOICEMODE_KOKORO_BACKEND": "external",
    }
    for handle, audio, client in engines_daemon(("whisper", "piper"), env):
        with running_door(handle) as door:
            yield Stack(Rig(handle, audio, client, voice), door, livekit)


@pytest.fixture(scope="module")
def browser(voice: Voice, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    speech = voice.say(TALK_ANSWER)
    rate = speech.format.rate
    lead, tail = b"\0\0" * int(rate * ROOM_LEAD_S), b"\0\0" * int(rate * ROOM_TAIL_S)
    answer = write_wav(tmp_path_factory.mktemp("mic") / "answer.wav", lead + speech.pcm + tail, rate)
    args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={answer}",
        "--autoplay-policy=no-user-gesture-required",
    ]
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=args)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh profile per test: its own session storage, so a token never carries over."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(20_000)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    page = context.new_page()
    page.add_init_script(RECORD_STAGES)
    return page


RECORD_STAGES = """
window.__stages = [];
new MutationObserver(() => {
  const stage = document.querySelector('#turn-live')?.dataset.stage;
  const last = window.__stages[window.__stages.length - 1];
  if (stage && (!last || last[0] !== stage)) window.__stages.push([stage, Date.now()]);
}).observe(document, { subtree: true, attributes: true, attributeFilter: ['data-stage'] });
"""


SHORTEN_PATHS = """([repo, home]) => {
  for (const node of document.querySelectorAll('#log-tail, #config td.value')) {
    node.textContent = node.textContent.split(repo).join('~/voicemode').split(home).join('~');
  }
}"""


def screenshot(page: Page, name: str) -> None:
    """Saves the page as test-artifacts/screenshots/NAME.png (and, with VOICEMODE_UPDATE_SCREENSHOTS=1,
    as the README's docs/screenshots/NAME.png); the log's absolute paths of this checkout are shortened
    first, as they would read on a person's machine."""
    page.evaluate(SHORTEN_PATHS, [str(REPO), str(Path.home())])
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("VOICEMODE_UPDATE_SCREENSHOTS") == "1":
        DOCS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS / f"{name}.png")


def service_pid(stack: Stack, name: str) -> int:
    client = stack.rig.client
    info = client.call(client.supervisor.GetService, services_pb2.ServiceRequest(name=name))
    return int(info.pid)


def words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def overlap(expected: str, got: str) -> float:
    want, have = words(expected), set(words(got))
    return sum(w in have for w in want) / len(want)


# -- the dashboard ---------------------------------------------------------------------------------


def test_dashboard_lists_services_providers_devices_and_config(stack: Stack, page: Page) -> None:
    page.goto(stack.door.page("/"))
    for name in ("whisper", "piper", "kokoro", "livekit"):
        expect(page.locator(f"#services tr[data-service={name}]")).to_be_visible()
    for name in ("whisper", "piper"):
        row = page.locator(f"#services tr[data-service={name}]")
        expect(row.locator(".state")).to_contain_text("running")
        expect(row.locator(".pid")).to_have_text(str(service_pid(stack, name)))
    expect(page.locator('#providers tr[data-provider^="stt/"]').first).to_be_visible()
    expect(page.locator('#providers tr[data-provider^="tts/"]').first).to_be_visible()
    expect(page.locator("#devices li").first).to_be_visible()
    expect(page.locator("#error")).to_be_hidden()
    assert "token" not in page.url, "the token leaves the address bar (and the history)"
    port = page.locator("#config tr[data-key=VOICEMODE_PIPER_PORT]")
    expect(port.locator(".value")).to_have_text(
        stack.daemon.env.get("VOICEMODE_PIPER_PORT", re.compile(r"\d+"))
    )
    if stack.livekit is not None:
        secret = stack.livekit.api_secret
        value = page.locator("#config tr[data-key=LIVEKIT_API_SECRET] .value")
        expect(value).to_have_text(re.compile(re.escape(secret[-4:]) + "$"))
        assert secret not in page.content(), "a secret shows only its last four characters"
    expect(page.locator("#log-tail")).not_to_be_empty()


def test_a_converse_turn_appears_live_then_in_history_with_a_playable_recording(
    stack: Stack, page: Page
) -> None:
    page.goto(stack.door.page("/"))
    expect(page.locator("#services tr[data-service=piper]")).to_be_visible()
    page.wait_for_timeout(300)  # the event stream is open before the turn starts
    rig = stack.rig
    answer = rig.say(ANSWER)

    def on_event(kind: str, _turn: Turn) -> None:
        if kind == "listening":
            rig.play(answer)

    turns: list[Turn] = []
    worker = threading.Thread(
        target=lambda: turns.append(
            rig.converse(conversation_pb2.ConverseRequest(message=QUESTION), on_event=on_event)
        )
    )
    worker.start()
    live = page.locator("#turn-live")
    expect(live.locator(".transcript")).to_contain_text("settings", timeout=60_000)
    worker.join(60)
    finished_ms = time.time() * 1000
    turn = turns[0]
    assert turn.result is not None, turn.error
    stages = page.evaluate("window.__stages")
    seen = [stage for stage, _ in stages]
    assert "listening" in seen and "speech_start" in seen, seen
    listening_ms = next(at for stage, at in stages if stage == "listening")
    assert listening_ms < finished_ms, "the page showed the turn while it went on"
    expect(live).to_have_attribute("data-stage", re.compile("transcript|done"))
    expect(page.locator("#providers tr.bad")).to_have_count(0, timeout=15_000)
    screenshot(page, "dashboard")

    page.goto(stack.door.page("/history"))
    row = page.locator(f'#history tr[data-turn="{turn.result.turn_id}"]')
    expect(row).to_be_visible()
    assert overlap(ANSWER, row.locator(".text").inner_text()) >= 0.8
    expect(row.locator(".message")).to_have_text(QUESTION)
    audio = row.locator("audio")
    audio.wait_for()
    page.wait_for_function(
        "a => a.readyState >= 2 && a.duration > 1", arg=audio.element_handle(), timeout=20_000
    )
    assert page.locator("#latency-plot circle").count() >= 2, "both latencies of the turn are plotted"
    screenshot(page, "history")


def test_the_restart_button_restarts_a_service_and_shows_its_new_pid(stack: Stack, page: Page) -> None:
    page.goto(stack.door.page("/"))
    row = page.locator("#services tr[data-service=piper]")
    before = service_pid(stack, "piper")
    expect(row.locator(".pid")).to_have_text(str(before))
    row.locator("button[data-action=restart]").click()
    expect(row.locator(".pid")).not_to_have_text(str(before), timeout=60_000)
    expect(row.locator(".state")).to_contain_text("running")
    after = service_pid(stack, "piper")
    assert after != before
    expect(row.locator(".pid")).to_have_text(str(after))
    expect(page.locator("#error")).to_be_hidden()


def test_a_service_that_cannot_start_is_said_in_words(stack: Stack, page: Page) -> None:
    page.goto(stack.door.page("/"))
    row = page.locator("#services tr[data-service=kokoro]")
    row.locator("button[data-action=start]").click()
    error = page.locator("#error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("kokoro")
    expect(error).not_to_contain_text("Traceback")
    expect(row.locator(".state")).not_to_contain_text("running")


# -- the token and the daemon's absence ------------------------------------------------------------


def test_without_the_token_the_page_says_so_and_nothing_changes(stack: Stack, page: Page) -> None:
    page.goto(stack.door.page("/", with_token=False))
    row = page.locator("#services tr[data-service=whisper]")
    expect(row.locator(".state")).to_contain_text("running")  # reading works on loopback
    before = service_pid(stack, "whisper")
    row.locator("button[data-action=stop]").click()
    error = page.locator("#error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("token")
    expect(error).to_contain_text("voicemodectl web url")
    # A wrong token is refused as well.
    page.evaluate("sessionStorage.setItem('voicemode-token', 'not-the-token')")
    row.locator("button[data-action=stop]").click()
    expect(error).to_contain_text("token")
    assert service_pid(stack, "whisper") == before, "the service was not touched"


def test_the_daemon_not_running_is_said_in_words(stack: Stack, page: Page) -> None:
    absent = dataclasses.replace(stack.daemon, socket=stack.daemon.root / "no-daemon.sock", process=None)
    with running_door(absent, with_token=False) as door:
        page.goto(door.page("/", with_token=False))
        error = page.locator("#error")
        expect(error).to_contain_text("the voicemode daemon is not running")
        expect(error).to_contain_text("voicemodectl daemon start")
        expect(page.locator("#services")).to_be_visible()
        # The door itself gone: the page says that too.
        stop_group(door.process)
        expect(error).to_contain_text("the web door is not answering", timeout=10_000)
        page.close()


# -- talking through a LiveKit room ------------------------------------------------------------------


@needs_livekit
def test_the_talk_page_converses_through_a_room_with_the_fake_microphone(stack: Stack, page: Page) -> None:
    page.goto(stack.door.page("/talk"))
    expect(page.locator("#talk-status")).to_contain_text("Ready")
    page.locator("#talk-button").click()
    transcript = page.locator("#talk-transcript")
    expect(transcript).to_have_attribute("data-state", re.compile("done|failed"), timeout=60_000)
    expect(page.locator("#error")).to_be_hidden()
    assert overlap(TALK_ANSWER, transcript.inner_text()) >= 0.6, transcript.inner_text()
    heard = float(page.locator("#talk-audio").get_attribute("data-heard") or 0)
    assert heard > 0.5, f"the page heard {heard:.2f} s of the assistant's voice"
    screenshot(page, "talk")
    # The room's turn is in the history too, beside the one on the local devices.
    page.goto(stack.door.page("/history"))
    expect(page.locator("#history tr[data-turn] .text").first).to_contain_text("tea")
    expect(page.locator("#history tr[data-turn]").first.locator("audio")).to_be_attached()
    page.wait_for_function(
        "[...document.querySelectorAll('#history audio')].every(a => a.duration > 0)", timeout=20_000
    )
    screenshot(page, "history")


@needs_livekit
def test_stop_on_the_talk_page_hangs_up_and_the_daemon_cancels_the_turn(stack: Stack, page: Page) -> None:
    message = "This turn is stopped halfway."
    page.goto(stack.door.page("/talk"))
    page.locator("#talk-message").fill(message)
    button = page.locator("#talk-button")
    button.click()
    expect(page.locator("#talk-status")).to_contain_text("Listening", timeout=30_000)
    expect(button).to_have_text("Stop")
    button.click()
    expect(page.locator("#talk-status")).to_have_text("Stopped.")
    expect(button).to_have_text("Talk")
    expect(page.locator("#error")).to_be_hidden()
    page.goto(stack.door.page("/history"))
    newest = page.locator("#history tr[data-turn]").first
    expect(newest.locator(".message")).to_have_text(message)
    expect(newest.locator(".end")).to_have_text("cancelled")


def test_the_talk_page_says_when_no_livekit_server_runs(door: DoorAndDaemon, page: Page) -> None:
    page.goto(door.door.page("/talk"))
    error = page.locator("#error")
    expect(error).to_contain_text("LiveKit")
    expect(error).to_contain_text("voicemodectl service")
    page.locator("#talk-button").click()
    expect(page.locator("#talk-transcript")).to_have_attribute("data-state", "failed")
    expect(error).to_contain_text("no LiveKit server is running")
