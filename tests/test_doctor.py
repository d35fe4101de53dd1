"""`vdisc doctor` tells the truth, and optional roles are noticed once (issue 12, parts 3 and 4).

The library here is built as the README's first command builds it on a machine
without the Hugging Face hub: the default visual model (ViT-B-32) cannot load,
captions are off (no GPU) and no LLM is configured. Real SQLite libraries, the
real console script in subprocesses.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from vdisc import Library

from conftest import FIXTURES
from test_cli import vdisc

QUESTION = "when is the pineapple shown on screen?"


def _warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("vdisc: warning:")]


@pytest.fixture(scope="module")
def no_visual_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """talk.mp4 indexed through the API with the default models, offline (so no visual model), no speech
    (faster to build; its on-screen text is what the questions find). Nothing is remembered yet: the API
    passes every notice on (here: to the log)."""
    home = tmp_path_factory.mktemp("no-visual")
    (r,) = Library(home, device="cpu", offline=True, models={"asr": "none"}).index(FIXTURES / "talk.mp4")
    assert r.status == "indexed" and "visual" not in r.channels and "ocr" in r.channels, r
    assert not (home / "notices.json").exists()
    return home


def test_doctor_reports_an_unused_role_that_cannot_load_as_off(no_visual_home: Path):
    r = vdisc("doctor", "--library", str(no_visual_home))
    assert r.returncode == 0, r.stdout + r.stderr
    (line,) = [x for x in r.stdout.splitlines() if "model visual" in x]
    assert line.startswith("[off] model visual:") and "does not use it" in line and "VDISC_VISUAL_MODEL" in line
    assert not [x for x in r.stdout.splitlines() if x.startswith("[BAD]")], r.stdout
    assert any(x.startswith("[off] model caption:") for x in r.stdout.splitlines())
    assert any(x.startswith("[off] model llm:") and "offline planner" in x for x in r.stdout.splitlines())
    r = vdisc("doctor", "--library", str(no_visual_home), "--json")
    assert r.returncode == 0
    report = json.loads(r.stdout)
    checks = {c["name"]: c for c in report["checks"]}
    assert report["ok"] and checks["model visual"]["state"] == "off" and checks["model visual"]["ok"]
    assert checks["model visual"]["fix"]  # how to enable it
    assert checks["model ocr"]["state"] == "ok" and checks["model llm"]["state"] == "off"
    assert {c["state"] for c in report["checks"]} <= {"ok", "off"}


def test_doctor_fails_when_a_role_the_library_was_built_with_cannot_load(tmp_path: Path, tiny_clip_dir: Path):
    clip = tmp_path / "clip-model"
    shutil.copytree(tiny_clip_dir, clip)
    video = tmp_path / "clip one.mp4"
    shutil.copy(FIXTURES / "silent.mp4", video)
    lib = Library(tmp_path / "lib", device="cpu", models={"visual": f"local-dir:{clip}", "asr": "none",
                                                           "ocr": "none", "caption": "none"})
    (r,) = lib.index(video)
    assert r.status == "indexed" and r.channels == ["visual"]
    r = vdisc("doctor", "--library", str(lib.path))
    assert r.returncode == 0, r.stdout  # the model the library remembers loads
    assert any(x.startswith("[ok ] model visual:") for x in r.stdout.splitlines()), r.stdout
    shutil.rmtree(clip)  # the model the vectors were made with is gone from this machine
    r = vdisc("doctor", "--library", str(lib.path))
    assert r.returncode == 1, r.stdout
    (line,) = [x for x in r.stdout.splitlines() if "model visual" in x]
    assert line.startswith("[BAD] model visual:") and "built with it" in line and "VDISC_VISUAL_MODEL" in line
    bad = [x for x in r.stdout.splitlines() if x.startswith("[BAD]")]
    assert bad == [line], r.stdout  # nothing else is reported broken
    checks = {c["name"]: c for c in json.loads(vdisc("doctor", "--library", str(lib.path), "--json").stdout)["checks"]}
    assert checks["model visual"]["state"] == "bad" and not checks["model visual"]["ok"]


def test_ask_says_optional_roles_once_per_library(no_visual_home: Path):
    lib = str(no_visual_home)
    first = vdisc("ask", QUESTION, "--library", lib)
    assert first.returncode == 0, first.stderr
    assert "PINEAPPLE" in first.stdout.upper()
    (line,) = _warnings(first.stderr)  # visual, captions and LLM: one line
    for said in ("visual channel off", "captions off", "no LLM configured", "vdisc info"):
        assert said in line, first.stderr
    second = vdisc("ask", QUESTION, "--library", lib)
    assert second.returncode == 0 and _warnings(second.stderr) == [], second.stderr
    assert second.stdout == first.stdout
    verbose = vdisc("ask", QUESTION, "--library", lib, "--verbose")
    lines = _warnings(verbose.stderr)
    assert len(lines) == 3 and any("VDISC_VISUAL_MODEL" in x for x in lines), verbose.stderr
    assert _warnings(vdisc("ask", QUESTION, "--library", lib).stderr) == []  # --verbose did not reset anything

    info = vdisc("info", "--library", lib, "--json")
    assert info.returncode == 0, info.stderr
    notices = json.loads(info.stdout)["notices"]
    assert {n["role"] for n in notices} == {"visual", "caption", "llm"}
    assert all(n["message"] and n["short"] for n in notices)
    assert json.loads(info.stdout)["models"]["llm"] == {"ref": "none", "state": "offline"}
    text = vdisc("info", "--library", lib).stdout
    assert sum(x.startswith("notice ") for x in text.splitlines()) == 3 and "model     llm: none [offline]" in text

    # another setting is news again; remembering that cannot be written never fails the command
    other = vdisc("ask", QUESTION, "--library", lib, env={"VDISC_CAPTION_MODEL": "magic"})
    assert other.returncode == 0 and len(_warnings(other.stderr)) == 1 and "caption" in other.stderr, other.stderr
    (no_visual_home / "notices.json").unlink()
    (no_visual_home / "notices.json").mkdir()  # unreadable and unwritable as a file
    for _ in range(2):
        r = vdisc("ask", QUESTION, "--library", lib)
        assert r.returncode == 0 and r.stdout == first.stdout, r.stderr
        assert len(_warnings(r.stderr)) == 1 and "visual channel off" in r.stderr  # said, not remembered
