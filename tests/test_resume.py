"""Crash and resume: SIGKILL an indexing process at several points, then finish the job.

The library must be consistent after every kill, the rerun must pick up the
checkpointed work instead of starting over, and the result must equal a
library built without interruption.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from vdisc import Library
from vdisc.index.checkpoint import PARTIAL_DIR
from vdisc.index.vectors import VectorIndex, index_names

from conftest import FIXTURES

BATCH = 6  # frames per batch: many checkpoints on a 60 s video
QUERIES = ["heavy rain expected", "the bridge is closed", "a test pattern", "numbers on screen"]


def _env(models: dict[str, str]) -> dict[str, str]:
    env = {f"VDISC_{role.upper()}_MODEL": ref for role, ref in models.items()}
    return {**os.environ, **env, "VDISC_BATCH_SIZE": str(BATCH), "VDISC_DEVICE": "cpu"}


def _index_cmd(home: Path, video: Path) -> list[str]:
    return [sys.executable, "-m", "vdisc.cli", "index", str(video), "--library", str(home), "--json"]


def _batches(home: Path) -> list[Path]:
    return sorted((home / PARTIAL_DIR).glob("*/batch-*.npz"))


def _complete(home: Path) -> bool:
    files = _batches(home)
    if not files:
        return False
    with np.load(files[-1]) as data:
        return bool(json.loads(data["meta"].tobytes())["state"].get("complete"))


# Where to kill: after the first checkpoint, in the middle, and once decoding is over (storing).
KILL_POINTS = {
    "first batch": lambda home: len(_batches(home)) >= 1,
    "middle": lambda home: len(_batches(home)) >= 4,
    "decoding done": _complete,
}


def _snapshot(home: Path) -> dict:
    """What a user can observe of a library: its clips, vector counts and search results."""
    with sqlite3.connect(home / "library.db") as conn:
        clips = conn.execute("SELECT idx, round(start, 3), round(end, 3), shot, transcript, ocr_text "
                             "FROM clips ORDER BY idx").fetchall()
        counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                  for t in ("videos", "scenes", "clips", "frames", "words", "texts", "events")}
    vectors = {name: len(VectorIndex(home / "vectors" / name)) for name in index_names(home / "vectors")}
    lib = Library(home)
    results = {q: [(h.level, round(h.start, 2), round(h.end, 2)) for h in lib.search(q, top_k=5).hits]
               for q in QUERIES}
    return {"clips": clips, "counts": counts, "vectors": vectors, "search": results}


def _assert_consistent(home: Path, finished: bool = True) -> None:
    """doctor's integrity checks: every row of a finished video has its vector, every vector its row,
    no duplicates, every event its text (a killed run's unfinished video may lack vectors; the next run
    removes it)."""
    from vdisc.doctor import _library_checks

    report = _library_checks(Library(home))
    checks = [c for c in report if c["name"].startswith("vectors ")]
    assert checks or not finished, "a finished library has vector indexes"
    checks += [c for c in report if c["name"] == "events"]
    assert all(c["ok"] for c in checks), [c for c in checks if not c["ok"]]


@pytest.fixture(scope="module")
def baseline(tmp_path_factory, test_models):
    home = tmp_path_factory.mktemp("uninterrupted")
    out = subprocess.run(_index_cmd(home, FIXTURES / "talk.mp4"), env=_env(test_models), capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert not list((home / PARTIAL_DIR).glob("*")), "a finished video leaves no checkpoint"
    return _snapshot(home)


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_sigkill_then_resume_equals_an_uninterrupted_run(point, baseline, tmp_path, test_models):
    home = tmp_path / "lib"
    env, cmd = _env(test_models), _index_cmd(home, FIXTURES / "talk.mp4")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not KILL_POINTS[point](home):
        assert proc.poll() is None, f"finished before the kill point: {proc.stderr.read().decode()}"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    saved = len(_batches(home))
    assert saved >= 1
    if (home / "library.db").exists():
        _assert_consistent(home, finished=False)
    if point == "middle":  # doctor names the unfinished video and its checkpoint, and finds no damage
        doc = subprocess.run([sys.executable, "-m", "vdisc.cli", "doctor", "--library", str(home), "--json",
                              "--offline"], env=env, capture_output=True, text=True, timeout=300)
        checks = {c["name"]: c for c in json.loads(doc.stdout)["checks"]}
        half = checks["half-indexed videos"]
        assert not half["ok"] and "talk.mp4" in half["detail"] and "checkpoints of 1 interrupted" in half["detail"]
        assert all(c["ok"] for name, c in checks.items() if name.startswith("vectors "))

    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    (report,) = json.loads(out.stdout)
    assert report["status"] == "indexed"
    assert report["resumed_from"] > 0, "the rerun started over instead of resuming"
    if point == "decoding done":
        assert report["resumed_from"] == pytest.approx(report["duration"], abs=0.5)
    _assert_consistent(home)
    assert not list((home / PARTIAL_DIR).glob("*")), "the checkpoint is removed once the video is in"
    assert _snapshot(home) == baseline


def test_a_checkpoint_from_other_settings_is_not_used(tmp_path, test_models):
    """Changing a setting that shapes perception makes the rerun start over."""
    home = tmp_path / "lib"
    env, cmd = _env(test_models), _index_cmd(home, FIXTURES / "talk.mp4")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while len(_batches(home)) < 2:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    out = subprocess.run(cmd, env={**env, "VDISC_CLIP_SECONDS": "6"}, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    (report,) = json.loads(out.stdout)
    assert report["resumed_from"] == 0
    with sqlite3.connect(home / "library.db") as conn:
        longest = conn.execute("SELECT max(end - start) FROM clips").fetchone()[0]
    assert longest <= 6.0 + 1e-6
