"""End to end: `vdisc serve` on the talk fixture, driven by headless Chromium (the system's, never a download).

Types a question, watches the trace stream in, checks the moment's time range, clicks it and checks the
player landed within a second of the moment's start; then searches and plays a second moment of the same
video. A screenshot is kept in tests/artifacts/ (or $VDISC_TEST_ARTIFACTS).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from served import serving
from test_agent_offline import iou
from vdisc.timefmt import hms

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(os.environ.get("VDISC_TEST_ARTIFACTS") or Path(__file__).parent / "artifacts")
SEEK_TIMEOUT_MS = 30_000

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary on PATH (Debian: apt-get install "
                                "chromium; .ci/run installs it)")

# Resolves with the player's currentTime after its next seek, or rejects after a while (evaluate has no timeout).
ARM_SEEKED = f"""void (window.__seeked = new Promise((resolve, reject) => {{
    const player = document.getElementById("player");
    player.addEventListener("seeked", () => resolve(player.currentTime), {{once: true}});
    setTimeout(() => reject(new Error("no seek within {SEEK_TIMEOUT_MS} ms")), {SEEK_TIMEOUT_MS});
}}))"""


def play(page, row) -> float:
    """Click ``row`` and return where the player stands once its seek has landed."""
    page.evaluate(ARM_SEEKED)
    row.click()
    page.evaluate("window.__seeked")
    return page.evaluate("document.getElementById('player').currentTime")


def test_ask_see_click_play(talk_library, talk_truth, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    home, _ = talk_library
    truth = next(x for x in talk_truth["speech"] if "umbrella" in x["text"])
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "e2e_ask_play.png"
    with serving(home, tmp_path_factory.mktemp("e2e-logs")) as url, sync_playwright() as pw:
        args = ["--no-sandbox"] if os.geteuid() == 0 else []  # Chromium's sandbox refuses to run as root
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            problems: list[str] = []
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(url)
            page.locator("#video-filter option", has_text="talk.mp4").wait_for(state="attached")

            page.fill("#question", "When is a downpour forecast?")
            page.click("#ask-form button")
            rows = page.locator("#results .vdisc-moment[data-video-id]")
            rows.first.wait_for(timeout=90_000)
            assert "search(" in page.inner_text("#trace") and page.locator("#trace li").count() >= 2
            row = rows.first
            start, end = float(row.get_attribute("data-start")), float(row.get_attribute("data-end"))
            assert iou((start, end), (truth["start"], truth["end"])) >= 0.5, (start, end, truth)
            assert f"{hms(start)}–{hms(end)}" in row.inner_text() and "umbrella" in row.inner_text().lower()

            current = play(page, row)
            assert abs(current - start) <= 1.0, (current, start)
            assert page.evaluate("document.getElementById('player').error") is None
            assert page.get_attribute("#player", "src") == "/video/1"
            page.wait_for_timeout(300)  # a frame on screen for the screenshot
            page.screenshot(path=str(shot), full_page=True)
            print(f"screenshot: {shot}")

            # a follow-up, read against that answer: what is said right after the rain warning
            keeper = next(x for x in talk_truth["speech"] if "goalkeeper" in x["text"])
            assert page.is_checked("#followup")
            page.fill("#question", "and what is said right after?")
            page.click("#ask-form button")
            page.locator("#results .vdisc-moment[data-video-id]", has_text="goalkeeper").first.wait_for(
                timeout=90_000)
            nxt = page.locator("#results .vdisc-moment[data-video-id]").first
            assert abs(float(nxt.get_attribute("data-start")) - keeper["start"]) <= 1.0, nxt.inner_text()

            # a search, thumbnails that load, and a second moment of the video already in the player
            page.fill("#query", "pineapple")
            page.click("#search-form button")
            page.locator("#status", has_text="for “pineapple”").wait_for()
            hit = page.locator("#results .vdisc-moment[data-video-id]").first
            assert "PINEAPPLE" in hit.inner_text()
            page.locator("#results img").first.wait_for()
            assert page.evaluate("Promise.all([...document.querySelectorAll('#results img')].map(i => i.decode()))"
                                 ".then(() => [...document.querySelectorAll('#results img')]"
                                 ".every(i => i.naturalWidth > 0))")
            hit_start = float(hit.get_attribute("data-start"))
            assert abs(hit_start - start) > 5  # a different moment, so the seek is a real jump
            assert abs(play(page, hit) - hit_start) <= 1.0
            assert not problems, problems  # no CSP violations, 404s or script errors
        finally:
            browser.close()
