"""Removing videos, moved files, the writer lock, and `vdisc doctor`."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import time

import pytest

from vdisc import Library, LibraryError

from conftest import FIXTURES
from test_cli import vdisc


@pytest.fixture
def small_lib(tmp_path, tiny_clip_dir):
    models = {"visual": f"local-dir:{tiny_clip_dir}", "asr": "none", "ocr": "none", "caption": "none"}
    video = tmp_path / "clip one.mp4"
    shutil.copy(FIXTURES / "silent.mp4", video)
    lib = Library(tmp_path / "lib", models=models)
    (r,) = lib.index(video)
    assert r.status == "indexed"
    return lib, video


def _rows(lib: Library) -> dict[str, int]:
    with sqlite3.connect(lib.settings.db_path) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                for t in ("videos", "scenes", "clips", "frames", "texts")}


def test_rm_removes_rows_and_vectors(small_lib):
    lib, video = small_lib
    assert _rows(lib)["clips"] >= 1 and len(lib.store.vectors("frame", "visual")) > 0
    r = vdisc("rm", video.name, "--library", str(lib.path))
    assert r.returncode == 0 and r.stdout.strip() == f"removed {video.name}"
    assert all(n == 0 for n in _rows(lib).values())
    assert all(len(ix) == 0 for ix in Library(lib.path).store.vector_indexes())
    r = vdisc("rm", video.name, "--library", str(lib.path))
    assert r.returncode == 1 and "no indexed video" in r.stderr and "Traceback" not in r.stderr


def test_a_moved_file_is_recognised(small_lib, tmp_path):
    lib, video = small_lib
    moved = tmp_path / "elsewhere" / "renamed.mp4"
    moved.parent.mkdir()
    video.rename(moved)
    before = _rows(lib)
    (r,) = lib.index(moved)
    assert r.status == "unchanged" and "moved from" in r.reason
    assert _rows(lib) == before
    assert [v.path for v in lib.videos()] == [str(moved.resolve())]


def test_a_second_writer_is_refused_with_one_line(small_lib):
    lib, video = small_lib
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\n"
        "from vdisc.index.store import Store\n"
        f"s = Store({str(lib.path)!r})\n"
        "with s.writer_lock():\n"
        "    print('locked', flush=True)\n"
        "    time.sleep(30)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(LibraryError, match=r"being indexed by pid \d+"):
            lib.index(video, force=True)
        r = vdisc("index", str(video), "--library", str(lib.path), "--force")
        assert r.returncode == 1 and "being indexed by pid" in r.stderr and len(r.stderr.splitlines()) == 1
        assert lib.search("anything", top_k=1) is not None  # readers are never blocked
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.1)
    (r,) = lib.index(video, force=True)  # the lock died with its holder
    assert r.status == "indexed"


def test_doctor(small_lib, tmp_path):
    lib, _ = small_lib
    r = vdisc("doctor", "--library", str(lib.path), "--json", "--offline",
              env={"VDISC_ASR_MODEL": "none", "VDISC_OCR_MODEL": "none", "VDISC_TEXT_MODEL": "none",
                   "VDISC_CAPTION_MODEL": "none"})
    report = json.loads(r.stdout)
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["decoder pyav"]["ok"] and checks["schema"]["ok"]
    assert checks["vectors frame.visual"]["ok"] and checks["model visual"]["ok"]
    assert r.returncode == (0 if report["ok"] else 1)
    # break the library: drop a frame row behind FAISS's back
    with sqlite3.connect(lib.settings.db_path) as conn:
        conn.execute("DELETE FROM frames WHERE id = (SELECT min(id) FROM frames)")
    r = vdisc("doctor", "--library", str(lib.path), "--offline",
              env={"VDISC_ASR_MODEL": "none", "VDISC_OCR_MODEL": "none", "VDISC_TEXT_MODEL": "none"})
    assert r.returncode == 1
    bad = [line for line in r.stdout.splitlines() if line.startswith("[BAD]")]
    assert any("vectors frame.visual" in line and "re-index" in line for line in bad)
