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


def test_search_while_another_process_indexes(tmp_path, tiny_clip_dir):
    """Readers see a consistent, growing library while a writer indexes in another process."""
    models = {"visual": f"local-dir:{tiny_clip_dir}", "asr": "none", "ocr": "none", "caption": "none"}
    folder = tmp_path / "videos"
    folder.mkdir()
    for i in range(4):  # distinct files (different bytes), same pictures
        data = (FIXTURES / "silent.mp4").read_bytes() + bytes([i]) * (i + 1)
        (folder / f"v{i}.mp4").write_bytes(data)
    home = tmp_path / "lib"
    lib = Library(home, models=models)
    (first,) = lib.index(folder / "v0.mp4")  # the library exists before the writer starts
    env = {f"VDISC_{k.upper()}_MODEL": v for k, v in models.items()}
    import os

    writer = subprocess.Popen([sys.executable, "-m", "vdisc.cli", "index", str(folder), "--library", str(home),
                               "--quiet"], env={**os.environ, **env}, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    seen: list[int] = []
    reader = Library(home, models=models)
    while writer.poll() is None:
        hits = reader.search("a test pattern", top_k=50).hits
        with sqlite3.connect(reader.settings.db_path) as conn:
            done = conn.execute("SELECT count(*) FROM videos WHERE status='done'").fetchone()[0]
        assert all(h.video_id >= 1 and h.video != "?" and h.end >= h.start for h in hits)
        seen.append(done)
    assert writer.returncode == 0, writer.stderr
    assert len(seen) >= 2 and seen == sorted(seen)  # searched while it ran; never went back
    assert len(reader.videos()) == 4
    names = {h.video for h in reader.search("a test pattern", top_k=50).hits}
    assert names == {f"v{i}.mp4" for i in range(4)}
