"""End to end on the generated fixture: index talk.mp4 with the real bundled
models (Whisper tiny.en, MiniLM, RapidOCR) and a tiny CLIP, then search."""

from __future__ import annotations

import math

import pytest
from sqlalchemy import func, select

from vdisc import Library
from vdisc.index.store import Clip, Frame, Scene, TextChunk, Video

# Paraphrases of the spoken lines in talk.json: few or none of the same words.
PARAPHRASES = {
    "salt": "a cook seasons the broth in a pot",
    "rocket": "spacecraft takeoff at sunrise from an island in the north",
    "library": "the book lending building shuts on weekends to be tidied",
    "umbrella": "forecast says there will be a downpour the next day",
    "goalkeeper": "the keeper grabbed the football single-handedly",
}


def _speech_line(truth: dict, key: str) -> dict:
    return next(s for s in truth["speech"] if key in s["text"].lower())


def _expected_clip(truth: dict, t: float, clip_seconds: float = 10.0) -> tuple[float, float]:
    """The clip that should hold time t: its shot, split into equal parts of <= clip_seconds."""
    start, end = next((a, b) for a, b in truth["shots"] if a <= t < b)
    n = max(1, math.ceil((end - start) / clip_seconds - 1e-9))
    step = (end - start) / n
    k = min(int((t - start) // step), n - 1)
    return start + k * step, start + (k + 1) * step


def test_index_report(talk_library, talk_truth):
    _, reports = talk_library
    (r,) = reports
    assert r.status == "indexed", r.reason
    assert abs(r.duration - talk_truth["duration"]) < 0.2
    assert set(r.channels) == {"speech", "visual", "ocr"}
    assert r.words >= 30  # five sentences were spoken


def test_clip_boundaries_match_shot_changes(talk_library, talk_truth):
    home, _ = talk_library
    lib = Library(home)
    with lib.store.session() as s:
        clips = s.scalars(select(Clip).order_by(Clip.start)).all()
    truth_cuts = [a for a, _ in talk_truth["shots"][1:]]
    clip_starts = [c.start for c in clips[1:]]
    # every real cut is a clip boundary (within 1 s) ...
    for cut in truth_cuts:
        assert min(abs(cut - b) for b in clip_starts) <= 1.0, (cut, clip_starts)
    # ... and every other boundary splits a shot longer than the 10 s cap, evenly
    expected = [_expected_clip(talk_truth, 0.5 * (c.start + c.end)) for c in clips]
    for c, (a, b) in zip(clips, expected):
        assert abs(c.start - a) <= 1.0 and abs(c.end - b) <= 1.0, (c.start, c.end, a, b)
        assert c.end - c.start <= 10.0 + 1e-6
    # clips tile the video with no gap or overlap
    assert clips[0].start == 0.0
    assert all(abs(x.end - y.start) < 1e-6 for x, y in zip(clips, clips[1:]))
    assert abs(clips[-1].end - talk_truth["duration"]) < 0.2


@pytest.mark.parametrize("key", sorted(PARAPHRASES))
def test_paraphrase_of_speech_ranks_its_clip_first(talk_library, talk_truth, key):
    home, _ = talk_library
    line = _speech_line(talk_truth, key)
    top = Library(home).search(PARAPHRASES[key]).hits[0]
    want_start, want_end = _expected_clip(talk_truth, 0.5 * (line["start"] + line["end"]))
    assert top.level == "clip"
    assert abs(top.start - want_start) <= 1.5 and abs(top.end - want_end) <= 1.5, (top, want_start, want_end)
    assert top.start - 1.5 <= line["start"] and line["end"] <= top.end + 1.5


def test_on_screen_words_find_the_clip_that_shows_them(talk_library, talk_truth):
    home, _ = talk_library
    lib = Library(home)
    for shown in talk_truth["onscreen"]:
        word = shown["text"].split()[0].lower()
        hits = lib.search(word, modality="ocr").hits
        assert hits, word
        mid = 0.5 * (shown["start"] + shown["end"])
        assert hits[0].start - 1.0 <= mid <= hits[0].end + 1.0, (word, hits[0])
        # the unfiltered search agrees
        top = lib.search(word).hits[0]
        assert top.start - 1.0 <= mid <= top.end + 1.0, (word, top)


def test_reopening_the_library_gives_identical_results(talk_library):
    home, _ = talk_library
    queries = ["weather tomorrow", "launch", "pineapple", "soccer"]
    first = [Library(home).search(q).to_dict() for q in queries]
    second = [Library(home).search(q).to_dict() for q in queries]
    assert first == second
    assert any(r["hits"] for r in first)


def test_filters(talk_library, talk_truth):
    home, _ = talk_library
    lib = Library(home)
    assert {h.level for h in lib.search("rain umbrella", level="scene").hits} <= {"scene"}
    assert {h.level for h in lib.search("rain umbrella", level="frame").hits} <= {"frame"}
    assert len(lib.search("the", top_k=3).hits) <= 3
    assert lib.search("rain", video="talk.mp4").hits
    with pytest.raises(Exception, match="no indexed video"):
        lib.search("rain", video="nope.mp4")
    with pytest.raises(Exception, match="unknown level"):
        lib.search("rain", level="chapter")


def test_a_query_nothing_clears_the_floor_for_still_gets_the_nearest_texts_scored_faint(talk_library):
    """No word and no sentence said in talk.mp4 is near "shelves" (every cosine under TEXT_FLOOR): search
    still returns the nearest lines rather than nothing, each scored far below a line that cleared the floor."""
    from vdisc.tools.search import FAINT_SHARE

    home, _ = talk_library
    lib = Library(home)
    faint, clear = lib.search("shelves", modality="speech").hits, lib.search("rain", modality="speech").hits
    assert faint and clear
    assert max(h.score for h in faint) <= FAINT_SHARE * max(h.score for h in clear)
    assert lib.search("shelves", modality="speech", within=(20.0, 30.0)).hits[0].snippet.startswith("The old library")
    # nothing is said in the clips between 15 s and 20 s: the filters still leave nothing to return
    assert not lib.search("shelves", modality="speech", level="clip", within=(15.0, 20.0)).hits


def test_vectors_and_rows_agree(talk_library):
    """Every FAISS index holds exactly the rows of its (level, modality)."""
    home, _ = talk_library
    lib = Library(home)
    store = lib.store
    tables = {"frame": Frame, "clip": Clip, "scene": Scene, "video": Video}
    seen = set()
    with store.session() as s:
        for ix in store.vector_indexes():
            seen.add((ix.level, ix.modality))
            if ix.modality == "visual":
                n_rows = s.scalar(select(func.count()).select_from(tables[ix.level]))
                ids = set(s.scalars(select(tables[ix.level].id)))
            else:
                q = select(TextChunk.id).where(TextChunk.level == ix.level, TextChunk.modality == ix.modality)
                ids = set(s.scalars(q))
                n_rows = len(ids)
            assert len(ix) == n_rows, (ix.level, ix.modality)
            assert set(ix.ids().tolist()) == ids
    assert {("frame", "visual"), ("clip", "visual"), ("clip", "speech"), ("clip", "ocr"),
            ("video", "summary")} <= seen


def test_reindex_unchanged_is_a_no_op_and_force_rebuilds(tmp_path, test_models):
    from conftest import FIXTURES

    lib = Library(tmp_path / "lib", models={**test_models, "asr": "none"})
    (first,) = lib.index(FIXTURES / "silent.mp4")
    assert first.status == "indexed"
    (again,) = lib.index(FIXTURES / "silent.mp4")
    assert again.status == "unchanged" and again.video_id == first.video_id
    (forced,) = lib.index(FIXTURES / "silent.mp4", force=True)
    assert forced.status == "indexed"
    assert [v.name for v in lib.videos()] == ["silent.mp4"]
    with lib.store.session() as s:
        assert s.scalar(select(func.count()).select_from(Clip)) == forced.clips
    assert len(lib.store.vectors("clip", "visual")) == forced.clips
