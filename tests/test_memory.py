"""Bounded memory of long and live videos: schema migration, hour/day consolidation, retention,
bounded browse, and search over every level. Libraries are written through the Store with real
vectors (tests/longlib.py); nothing here is mocked."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest
from sqlalchemy import event, select

from vdisc import Library, Settings
from vdisc.doctor import _library_checks
from vdisc.index.memory import consolidate, digest
from vdisc.index.store import SCHEMA_VERSION, Clip, Frame, Period, Store, TextChunk, Video

from conftest import FIXTURES
from longlib import add_media, new_video


@pytest.fixture(scope="module")
def models(tiny_clip_dir) -> dict[str, str]:
    return {"visual": f"local-dir:{tiny_clip_dir}", "text": "all-MiniLM-L6-v2", "asr": "none", "ocr": "none",
            "caption": "none"}


@pytest.fixture
def lib(tmp_path, models) -> Library:
    return Library(tmp_path / "lib", device="cpu", models=models)


def _periods(store: Store, video_id: int, level: str = "hour") -> list[tuple[int, int, float, float, bool]]:
    with store.session() as s:
        return [tuple(r) for r in s.execute(select(Period.id, Period.idx, Period.start, Period.end, Period.ready)
                                            .where(Period.video_id == video_id, Period.level == level)
                                            .order_by(Period.idx))]


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


# ---- schema ---------------------------------------------------------------------------
def test_a_version_1_library_migrates_in_place(tmp_path):
    home = tmp_path / "old"
    home.mkdir()
    with sqlite3.connect(home / "library.db") as conn:
        conn.executescript((FIXTURES / "library_v1.sql").read_text())
    store = Store(home, create=False)
    assert store.schema_version == SCHEMA_VERSION == 3
    with sqlite3.connect(home / "library.db") as conn:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(videos)")}
        indexes = {row[1] for row in conn.execute("PRAGMA index_list(clips)")}
        events = {row[1] for row in conn.execute("PRAGMA table_info(events)")}
    assert "started_at" in columns and "ix_clips_video_start" in indexes
    assert {"kind", "start", "end", "text", "bounds"} <= events  # migration 3: events with their extent
    with store.session() as s:
        v = s.get(Video, 1)
        assert v.started_at == "" and v.status == "done" and v.name == "old.mp4"
        assert [c.id for c, _ in store.fts(s, "harbour")] == [2]  # the old word index still answers
        s.add(Period(video_id=1, level="hour", idx=0, start=0.0, end=30.0, said="x"))
        s.commit()
    assert Store(home).schema_version == SCHEMA_VERSION  # opening again migrates nothing twice
    store.delete_video(1)
    assert all(n == 0 for n in store.counts().values())


def test_retention_setting(monkeypatch, tmp_path):
    assert Settings.load(home=tmp_path).retention_hours is None
    monkeypatch.setenv("VDISC_RETENTION_HOURS", "6")
    assert Settings.load(home=tmp_path).retention_hours == 6.0
    monkeypatch.setenv("VDISC_RETENTION_HOURS", "none")
    assert Settings.load(home=tmp_path).retention_hours is None
    monkeypatch.setenv("VDISC_RETENTION_HOURS", "-1")
    with pytest.raises(ValueError, match="retention_hours"):
        Settings.load(home=tmp_path)


# ---- consolidation --------------------------------------------------------------------
def test_hours_are_built_as_a_live_video_grows(lib):
    store, reg = lib.store, lib.registry
    vid = new_video(store, "stream.ts", status="live")
    add_media(store, reg, vid, 0, 5400)  # 1.5 h: hour 0 is complete, hour 1 is open
    consolidate(store, reg, vid)
    (first,) = _periods(store, vid)
    assert first[1:] == (0, 0.0, 3600.0, True)

    # the hour's visual vector is the unit mean of its clips' vectors; its text is a summary row
    with store.session() as s:
        clip_ids = s.scalars(select(Clip.id).where(Clip.video_id == vid, Clip.start < 3600)).all()
        (chunk,) = s.scalars(select(TextChunk).where(TextChunk.level == "hour")).all()
    expected = _unit(store.vectors("clip", "visual").vectors(clip_ids).mean(axis=0))
    assert np.allclose(store.vectors("hour", "visual").vectors([first[0]])[0], expected, atol=1e-5)
    assert (chunk.unit_id, chunk.modality, chunk.start, chunk.end) == (first[0], "summary", 0.0, 3600.0)
    assert "sunflower" in chunk.text and "volcano" not in chunk.text
    assert store.vectors("hour", "summary").ids().tolist() == [chunk.id]

    add_media(store, reg, vid, 5400, 9000)  # 2.5 h
    consolidate(store, reg, vid)
    hours = _periods(store, vid)
    assert [h[1:] for h in hours] == [(0, 0.0, 3600.0, True), (1, 3600.0, 7200.0, True)]
    assert hours[0][0] == first[0]  # built once, kept

    # nothing new: a couple of small queries, no clip read, no vector touched
    statements: list[str] = []

    def record(conn, cursor, statement, *rest) -> None:
        statements.append(statement)

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        consolidate(store, reg, vid)
    finally:
        event.remove(store.engine, "before_cursor_execute", record)
    assert len(statements) <= 3 and not any("FROM clips" in q for q in statements), statements
    assert len(store.vectors("hour", "visual")) == 2 and len(store.vectors("hour", "summary")) == 2

    with store.session() as s, s.begin():
        s.get(Video, vid).status = "done"
    consolidate(store, reg, vid, final=True)  # the open hour closes at the end
    assert [h[1:] for h in _periods(store, vid)] == [(0, 0.0, 3600.0, True), (1, 3600.0, 7200.0, True),
                                                    (2, 7200.0, 9000.0, True)]
    assert _periods(store, vid, "day") == []  # shorter than a day: the video level says it all

    # following again continues the timeline: the open hour is rebuilt once it is whole
    with store.session() as s, s.begin():
        s.get(Video, vid).status = "live"
    add_media(store, reg, vid, 9000, 10800)
    consolidate(store, reg, vid)
    hours = _periods(store, vid)
    assert hours[2][1:] == (2, 7200.0, 10800.0, True) and len(hours) == 3
    assert len(store.vectors("hour", "visual")) == 3 and len(store.vectors("hour", "summary")) == 3
    assert all(c["ok"] for c in _library_checks(lib)), [c for c in _library_checks(lib) if not c["ok"]]


def test_days_are_built_from_hours(lib):
    store, reg = lib.store, lib.registry
    vid = new_video(store, "week.ts", status="done")
    add_media(store, reg, vid, 0, 26 * 3600, clip_seconds=600, scene_clips=3, frames=1, text_vectors=False)
    consolidate(store, reg, vid, final=True)
    assert len(_periods(store, vid)) == 26
    days = _periods(store, vid, "day")
    assert [d[1:] for d in days] == [(0, 0.0, 86400.0, True), (1, 86400.0, 93600.0, True)]
    with store.session() as s:
        day0 = s.get(Period, days[0][0])
        hour_ids = s.scalars(select(Period.id).where(Period.level == "hour", Period.idx < 24)).all()
    # the day digest samples the whole day, not its first hour only
    assert "sunflower" in day0.said and "city marathon" in day0.said and len(day0.said) <= 480
    expected = _unit(store.vectors("hour", "visual").vectors(hour_ids).mean(axis=0))
    assert np.allclose(store.vectors("day", "visual").vectors([days[0][0]])[0], expected, atol=1e-5)
    hits = lib.search("city marathon", level="day").hits
    assert hits and (hits[0].start, hits[0].end) == (0.0, 86400.0)


def test_a_period_left_half_built_is_rebuilt(lib):
    store, reg = lib.store, lib.registry
    vid = new_video(store, "crash.ts")
    add_media(store, reg, vid, 0, 7300, text_vectors=False)
    consolidate(store, reg, vid)
    with store.session() as s, s.begin():  # as if the process died before marking it ready
        s.get(Period, _periods(store, vid)[1][0]).ready = False
    consolidate(store, reg, vid)
    hours = _periods(store, vid)
    assert [h[1:] for h in hours] == [(0, 0.0, 3600.0, True), (1, 3600.0, 7200.0, True)]
    assert sorted(store.vectors("hour", "visual").ids().tolist()) == sorted(h[0] for h in hours)
    assert len(store.vectors("hour", "summary")) == 2
    assert all(c["ok"] for c in _library_checks(lib))


def test_retention_drops_old_frames_and_search_still_finds_old_clips(lib):
    store, reg = lib.store, lib.registry
    vid = new_video(store, "cam.ts")
    needle = "The ferry to the lighthouse island leaves at noon."
    add_media(store, reg, vid, 0, 9000, needles={4800.0: needle})
    frames_before = len(store.vectors("frame", "visual"))
    consolidate(store, reg, vid, retention_hours=1.0)  # keep frames of the last hour (after 2:30:00 - 1 h)
    with store.session() as s:
        kept = s.execute(select(Frame.id, Clip.end).join(Clip, Clip.id == Frame.clip_id)).all()
        n_clips = len(s.scalars(select(Clip.id)).all())
    assert kept and min(end for _, end in kept) >= 5400.0
    assert sorted(store.vectors("frame", "visual").ids().tolist()) == sorted(i for i, _ in kept)
    assert len(store.vectors("frame", "visual")) < frames_before
    assert len(store.vectors("clip", "visual")) == n_clips  # clip vectors all stay
    checks = _library_checks(lib)
    assert all(c["ok"] for c in checks), [c for c in checks if not c["ok"]]

    hits = lib.search("ferry to the lighthouse island").hits
    assert hits[0].level == "clip" and (hits[0].start, hits[0].end) == (4800.0, 4860.0)
    assert needle in hits[0].snippet
    hour = lib.search("volcano eruption", level="hour").hits[0]  # hour 2 is the volcano hour
    assert (hour.start, hour.end) == (3600.0, 7200.0)

    # time order over many equal matches, and the final stretch of the video
    assert lib.search("volcano eruption", order="latest", level="clip").hits[0].end == 7200.0
    assert lib.search("volcano eruption", order="earliest", level="clip").hits[0].start == 3600.0
    recent = lib.search("volcano eruption", last="50m").hits
    assert recent and all(h.end > 9000 - 3000 for h in recent)
    assert all(h.start >= 9000 - 3000 for h in recent if h.level in ("hour", "day", "video"))

    consolidate(store, reg, vid, retention_hours=1.0)  # again: nothing more to drop
    assert sorted(store.vectors("frame", "visual").ids().tolist()) == sorted(i for i, _ in kept)

    store.delete_video(vid)
    assert store.counts()["periods"] == 0
    assert all(len(ix) == 0 for ix in store.vector_indexes())


# ---- browse -----------------------------------------------------------------------------
def _size(view) -> int:
    return len(json.dumps(view.model_dump()))


def _clip_rows_read(lib: Library, fn):
    """``fn()``, and how many rows its statements that read clips returned (each re-run to count them)."""
    seen: list[tuple[str, tuple]] = []

    def record(conn, cursor, statement, parameters, *rest) -> None:
        seen.append((statement, tuple(parameters)))

    event.listen(lib.store.engine, "before_cursor_execute", record)
    try:
        out = fn()
    finally:
        event.remove(lib.store.engine, "before_cursor_execute", record)
    with sqlite3.connect(lib.settings.db_path) as conn:
        rows = sum(len(conn.execute(q, p).fetchall()) for q, p in seen
                   if "FROM clips" in q and "count(" not in q.lower())
    return out, rows


def test_browse_is_bounded_for_any_length(lib):
    store, reg = lib.store, lib.registry
    short = new_video(store, "one_hour.ts", status="done")
    add_media(store, reg, short, 0, 3600, scene_clips=2, frames=1, text_vectors=False)
    long = new_video(store, "ten_hours.ts", status="done")
    add_media(store, reg, long, 0, 36000, scene_clips=2, frames=1, text_vectors=False)
    for vid in (short, long):
        consolidate(store, reg, vid, final=True)

    one = lib.browse("one_hour.ts", max_scenes=24)
    ten, ten_rows = _clip_rows_read(lib, lambda: lib.browse("ten_hours.ts", max_scenes=24))
    coarse, coarse_rows = _clip_rows_read(lib, lambda: lib.browse("ten_hours.ts", max_scenes=4))
    (v1,), (v10,), (vc,) = one.videos, ten.videos, coarse.videos
    assert len(v1.scenes) == len(v10.scenes) == 24 and v10.clips == 600
    assert 0.8 < _size(ten) / _size(one) < 1.25, (_size(one), _size(ten))
    assert ten_rows <= 24 * 12 < 600  # a bounded sample of the clips, never all of them
    assert coarse_rows == 0  # consolidated hours answer alone
    assert v10.scenes[0].start == 0.0 and v10.scenes[-1].end == 36000.0
    assert "jazz concert" in " ".join(sc.said for sc in v10.scenes)  # hour 5 is in the view

    # four entries of 2.5 hours: built from the hour digests, on hour boundaries
    assert vc.unit == "hour" and [(sc.start, sc.end) for sc in vc.scenes] == [
        (0.0, 10800.0), (10800.0, 18000.0), (18000.0, 28800.0), (28800.0, 36000.0)]
    assert "SUNFLOWER FIELDS" in vc.scenes[0].shown and "CORAL REEF" in vc.scenes[-1].shown
    assert _size(coarse) < _size(ten)


def test_browse_reads_the_open_hour_of_a_live_video_from_its_clips(lib):
    store, reg = lib.store, lib.registry
    vid = new_video(store, "live.ts", status="live")
    add_media(store, reg, vid, 0, 9000, frames=1, text_vectors=False)
    consolidate(store, reg, vid)  # hours 0 and 1; hour 2 is still open
    (v,) = lib.browse(max_scenes=2).videos
    assert v.status == "live" and v.unit == "hour"
    assert [(sc.start, sc.end) for sc in v.scenes] == [(0.0, 7200.0), (7200.0, 9000.0)]
    assert "submarine voyage" in v.scenes[1].said and "volcano" in v.scenes[0].said


def test_digest_spans_its_whole_stretch():
    parts = [f"part {i} " + "x" * 60 for i in range(40)]
    d = digest(parts, 160)
    assert len(d) <= 160 and "part 0" in d and "part 39" in d
    assert digest(["a", "a", " b  c "], 160) == "a b c"
    assert digest([], 160) == ""
