"""Indexing on a real Ray cluster (two nodes on this machine) writes the library a local run writes,
and a worker killed mid-run costs a retry, never a video twice.

The cluster tests skip when ray is not installed (``pip install 'vdisc[ray]'``; the dev extra has it);
the one-line error for ``--ray`` without ray is checked either way.
"""

from __future__ import annotations

import importlib.util
import logging
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vdisc import Library
from vdisc.errors import ConfigError

from conftest import FIXTURES

VIDEOS = [FIXTURES / "silent.mp4", FIXTURES / "frames.mp4", FIXTURES / "inject.mp4"]  # 33 s of media, speech too
QUERIES = ["a test pattern", "numbers on screen", "the bridge is closed", "heavy rain expected", "a red square"]
HAVE_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAVE_RAY, reason="ray is not installed (pip install 'vdisc[ray]')")


# ---- fixtures ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def cluster():
    from raycluster import start_cluster

    c = start_cluster(nodes=2)
    yield c
    c.shutdown()


def _options(cluster, **kw):
    from vdisc.index.ray_index import RayOptions

    # 0.6 of a 1-CPU node: one actor per node, so the work really is spread over both
    return RayOptions(address=cluster.address, cpus=0.6, **kw)


@pytest.fixture(scope="module")
def sequential(tmp_path_factory, test_models) -> dict:
    home = tmp_path_factory.mktemp("sequential")
    reports = Library(home, device="cpu", models=test_models).index(VIDEOS)
    assert [r.status for r in reports] == ["indexed"] * len(VIDEOS), [r.reason for r in reports]
    return _snapshot(home, test_models)


def _snapshot(home: Path, models: dict[str, str]) -> dict:
    """Everything a user can see of a library: rows per video, vectors by unit id, top-5 per query."""
    with sqlite3.connect(home / "library.db") as conn:
        videos = conn.execute("SELECT id, path, status, duration, channels FROM videos ORDER BY id").fetchall()
        clips = conn.execute("SELECT v.path, c.idx, round(c.start, 4), round(c.end, 4), c.shot, c.transcript, "
                             "c.ocr_text FROM clips c JOIN videos v ON v.id = c.video_id ORDER BY v.path, c.idx"
                             ).fetchall()
        words = conn.execute("SELECT v.path, round(w.start, 3), round(w.end, 3), w.text FROM words w "
                             "JOIN videos v ON v.id = w.video_id ORDER BY v.path, w.start").fetchall()
        texts = conn.execute("SELECT level, modality, round(start, 3), round(end, 3), text FROM texts "
                             "ORDER BY video_id, level, modality, start, text").fetchall()
        counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                  for t in ("videos", "scenes", "clips", "frames", "words", "texts", "events")}
    lib = Library(home, device="cpu", models=models)
    vectors = {}
    for index in lib.store.vector_indexes():
        ids = sorted(int(i) for i in index.ids())
        vectors[index.path.name] = (ids, index.vectors(ids) if ids else np.zeros((0, 0)))
    hits = {q: [(h.level, h.video, round(h.start, 2), round(h.end, 2)) for h in lib.search(q, top_k=5).hits]
            for q in QUERIES}
    return {"videos": videos, "clips": clips, "words": words, "texts": texts, "counts": counts,
            "vectors": vectors, "hits": hits, "doctor": lib.doctor()}


def _assert_same(got: dict, want: dict) -> None:
    for key in ("videos", "clips", "words", "texts", "counts", "hits"):
        assert got[key] == want[key], key
    assert got["vectors"].keys() == want["vectors"].keys()
    for name, (ids, vecs) in want["vectors"].items():
        got_ids, got_vecs = got["vectors"][name]
        assert got_ids == ids, name
        np.testing.assert_allclose(got_vecs, vecs, atol=1e-5, err_msg=name)


def _library_ok(doctor: dict) -> None:
    """doctor's verdict on the library itself (the machine's checks, a missing decoder say, are not ours)."""
    bad = [c for c in doctor["checks"] if not c["ok"]]
    assert not bad, bad


# ---- tests ---------------------------------------------------------------------------
@needs_ray
def test_a_cluster_run_writes_what_a_local_run_writes(cluster, sequential, tmp_path, test_models):
    home = tmp_path / "on-ray"
    events = []
    lib = Library(home, device="cpu", models=test_models, progress=events.append)
    reports = lib.index(VIDEOS, ray=_options(cluster))
    assert [r.status for r in reports] == ["indexed"] * len(VIDEOS), [r.reason for r in reports]
    assert [r.path for r in reports] == [str(v.resolve()) for v in VIDEOS]
    got = _snapshot(home, test_models)
    _assert_same(got, sequential)
    _library_ok(got["doctor"])
    # progress came back from the workers in media seconds, and every video reached its end
    frames = {e.video: e.done for e in events if e.stage == "frames"}
    assert frames == {"silent.mp4": 3.0, "frames.mp4": 10.0, "inject.mp4": 20.0}
    assert any(e.stage == "speech" and e.video == "inject.mp4" for e in events)
    # a second run finds nothing to do and does not need the cluster
    again = Library(home, device="cpu", models=test_models).index(VIDEOS, ray="no-such-host:1")
    assert [r.status for r in again] == ["unchanged"] * len(VIDEOS)


@needs_ray
def test_a_worker_killed_mid_video_is_retried_and_nothing_is_written_twice(cluster, sequential, tmp_path,
                                                                           test_models, caplog):
    """Kill the process perceiving inject.mp4 twice: Ray restarts the actor and retries the video
    (retries=1), the second death spends Ray's restarts, so the driver resubmits it to a fresh actor."""
    from raycluster import kill_busy_actor

    killed: list[dict] = []

    def progress(event) -> None:
        if len(killed) < 2 and event.video == "inject.mp4" and event.stage == "frames" and event.done < 10:
            status = kill_busy_actor("inject.mp4", spare={k["pid"] for k in killed})
            if status is not None:
                killed.append(status)

    home = tmp_path / "killed"
    lib = Library(home, device="cpu", models=test_models, progress=progress)
    with caplog.at_level(logging.WARNING, logger="vdisc"):
        reports = lib.index(VIDEOS, ray=_options(cluster, retries=1))
    assert len(killed) == 2, f"killed {killed}: the actor perceiving inject.mp4 was not found twice"
    assert "a Ray worker died perceiving" in caplog.text  # the second death: the driver resubmitted it
    assert [r.status for r in reports] == ["indexed"] * len(VIDEOS), [r.reason for r in reports]
    got = _snapshot(home, test_models)
    assert got["counts"] == sequential["counts"]  # every video once, whole
    assert sorted(v[1] for v in got["videos"]) == sorted(str(v.resolve()) for v in VIDEOS)
    _assert_same(got, sequential)
    _library_ok(got["doctor"])


@needs_ray
def test_workers_read_urls_through_fsspec(cluster, sequential, tmp_path, test_models):
    """file:// URLs stand in for object storage: the workers open them through fsspec (a local copy
    each), the library names the videos by URL and otherwise holds what the local run wrote."""
    pytest.importorskip("fsspec")
    urls = [v.resolve().as_uri() for v in VIDEOS]
    home = tmp_path / "urls"
    reports = Library(home, device="cpu", models=test_models).index(urls, ray=_options(cluster))
    assert [r.status for r in reports] == ["indexed"] * len(VIDEOS), [r.reason for r in reports]
    assert [r.path for r in reports] == urls
    got = _snapshot(home, test_models)
    local = {u: str(v.resolve()) for u, v in zip(urls, VIDEOS)}
    assert sorted(v[1] for v in got["videos"]) == sorted(urls)
    got["videos"] = [(v[0], local[v[1]], *v[2:]) for v in got["videos"]]
    for key in ("clips", "words"):
        got[key] = sorted((local[r[0]], *r[1:]) for r in got[key])
        sequential = {**sequential, key: sorted(sequential[key])}
    _assert_same(got, sequential)


@needs_ray
def test_a_long_file_split_across_actors_is_the_file_one_run_indexes(cluster, tmp_path, test_models):
    """events.mp4 (60 s) in three 20 s parts on two actors, its speech a task of its own: part 1 starts
    inside a shot (its seam's run goes on to a later common cut), part 2 on a cut of the whole run.
    One actor is killed mid-task: its task is retried, and the file still comes out whole and once."""
    from raycluster import kill_busy_actor

    from vdisc.index.ray_index import RayIndexer

    video = FIXTURES / "events.mp4"
    want = tmp_path / "sequential"
    assert Library(want, device="cpu", models=test_models).index(video)[0].status == "indexed"
    events, killed = [], []

    def progress(event) -> None:
        events.append(event)
        if not killed and 0 < event.done < event.total:  # mid-file: an actor is busy with it
            killed.append(kill_busy_actor("events.mp4"))

    home = tmp_path / "split"
    lib = Library(home, device="cpu", models=test_models)
    runner = RayIndexer(lib.settings, lib.store, lib.registry, progress, _options(cluster, split=20))
    reports = runner.index([video.resolve()])
    assert [r.status for r in reports] == ["indexed"], [r.reason for r in reports]
    assert killed and killed[0] is not None, "no actor was perceiving events.mp4 to kill"
    assert len(runner.perceive_seconds) == 1 + 3 + 2  # its speech, three parts, two seams' runs
    got = _snapshot(home, test_models)
    _assert_same(got, _snapshot(want, test_models))
    _library_ok(got["doctor"])
    assert got["counts"]["words"] > 20  # the speech task's words, assigned to the clips put together
    # one bar in media seconds for the file's frames: its parts summed, each part counted whole once back
    frames = [e.done for e in events if e.stage == "frames" and e.video == "events.mp4"]
    assert frames == sorted(frames) and frames[-1] == 60.0
    assert {20.0, 40.0} & set(frames), frames
    assert all(e.part is None for e in events)


def test_ray_without_ray_installed_is_one_clear_line(tmp_path, monkeypatch, test_models):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now fails as if not installed
    lib = Library(tmp_path / "lib", device="cpu", models=test_models)
    with pytest.raises(ConfigError, match=r"pip install 'vdisc\[ray\]'"):
        lib.index(VIDEOS[0], ray="local")
    code = ("import sys; sys.modules['ray'] = None\n"
            "from vdisc.cli import main\n"
            f"sys.argv = ['vdisc', 'index', {str(VIDEOS[0])!r}, '--library', {str(tmp_path / 'cli')!r}, "
            "'--ray', 'local']\n"
            "main()\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == ["vdisc: indexing on Ray needs ray, which is not installed: "
                                               "pip install 'vdisc[ray]'"]


@pytest.mark.parametrize(("args", "line"), [
    (["--ray-split", "5m"], "vdisc: --ray-split goes with --ray"),
    (["--ray", "local", "--ray-split", "soon"],
     "vdisc: bad duration 'soon': use seconds or a span like 90s, 10m, 2h, 1h30m"),
])
def test_ray_split_mistakes_are_one_line(tmp_path, args, line):
    out = subprocess.run([sys.executable, "-m", "vdisc.cli", "index", str(VIDEOS[0]), "--library",
                          str(tmp_path / "lib"), *args], capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert out.stderr.strip().splitlines() == [line]
    assert not (tmp_path / "lib").exists()  # nothing loaded, nothing made


def test_ray_split_reaches_the_options():
    from vdisc.cli import _ray_options

    assert _ray_options("auto", "15m").model_dump() == {**_ray_options("auto", "0").model_dump(), "split": 900.0}
    assert _ray_options("auto", "0").split == 0.0
    assert _ray_options("auto", None) == "auto"  # RayOptions' own default (600 s) then
