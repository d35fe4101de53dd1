"""A file split by time range, its parts perceived separately and put back together, is the file one
run perceives: the same clips, shots, frames, on-screen text and vectors (``index/split.py``).

Runs in one process on the real decoders, segmenter, OCR and tiny CLIP; the Ray tests run the same
parts on a cluster. Split points are chosen to hit every way a seam can go: a part whose first frame
is also a cut in the whole run, one whose first common cut comes later, one that starts inside a shot
that runs past its end, a part with no clip of its own, and seams in a file without cuts at all.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from vdisc import Library
from vdisc.config import Settings
from vdisc.index import decode
from vdisc.index.pipeline import FrameRange, Indexer, RangeRun
from vdisc.index.split import SplitFile, part_starts

from conftest import BUNNY, FIXTURES


@pytest.fixture(scope="module")
def indexer(tmp_path_factory, test_models) -> Indexer:
    models = {**test_models, "asr": "none"}  # speech is not split: one whole-file task (test_ray_index.py)
    lib = Library(tmp_path_factory.mktemp("split"), device="cpu", models=models)
    return Indexer(lib.settings, None, lib.registry, None)  # type: ignore[arg-type]


def _whole(indexer: Indexer, path: Path) -> RangeRun:
    return indexer.perceive_range(path, decode.probe(path), FrameRange())


def _split(indexer: Indexer, path: Path, starts: list[float], seed: int = 0) -> SplitFile:
    """Runs the parts in a shuffled order, each seam's run as soon as it can start, as the driver does."""
    info = decode.probe(path)
    split = SplitFile(starts)
    parts = split.parts()
    random.Random(seed).shuffle(parts)
    seams: list[FrameRange] = []
    for span in parts:
        follow = split.part_done(span.part, indexer.perceive_range(path, info, span))
        while follow is not None:
            seams.append(follow)
            follow = split.seam_done(indexer.perceive_range(path, info, follow))
    assert split.done, "every part came back, yet the file is not put together"
    assert all(s.part == -1 for s in seams)
    return split


def _assert_same(got: SplitFile, want: RangeRun) -> None:
    assert got.end == pytest.approx(want.end)
    assert got.channels == want.channels and got.decoder == want.decoder
    assert [(r.span.idx, r.span.start, r.span.end, r.span.shot) for r in got.clips] == \
        [(r.span.idx, r.span.start, r.span.end, r.span.shot) for r in want.clips]
    for g, w in zip(got.clips, want.clips):
        assert g.frame_ts == w.frame_ts, g.span
        assert g.ocr_reads == w.ocr_reads and g.ocr_lines == w.ocr_lines, g.span
        np.testing.assert_allclose(g.frame_vecs, w.frame_vecs, atol=1e-5, err_msg=str(g.span))
        np.testing.assert_allclose(g.span.hist, w.span.hist, atol=1e-9)


@pytest.fixture(scope="module")
def events_whole(indexer) -> RangeRun:
    return _whole(indexer, FIXTURES / "events.mp4")


def test_the_fixture_has_the_seams_this_file_tests(events_whole):
    """events.mp4's cuts (the whole run's): what the split points below are chosen against."""
    cuts = [m[0] for m in events_whole.marks]
    assert 40.0 in cuts  # a part starting at 40 s starts on a cut: it is in step from its first frame
    assert not any(20.0 <= c < 21 for c in cuts)  # one starting at 20 s is not: it syncs at a later cut


@pytest.mark.parametrize("starts", [[0.0, 20.0, 40.0], [0.0, 13.0, 27.0, 33.0, 52.0], [0.0, 30.0],
                                    [0.0, 1.0, 2.0, 59.0]])
def test_events_split_anywhere_is_the_whole_run(indexer, events_whole, starts):
    got = _split(indexer, FIXTURES / "events.mp4", starts, seed=len(starts))
    _assert_same(got, events_whole)


def test_a_seam_run_redoes_only_the_shot_left_open_up_to_the_parts_first_cut(indexer, events_whole):
    """Part 0 stops before 40 s with its last shot (from 20 s) still open; part 1 starts on the whole
    run's cut at 40 s. The seam's run goes on from part 0's state: 20 s of frames, then in step."""
    split = SplitFile([0.0, 40.0])
    info = decode.probe(FIXTURES / "events.mp4")
    first, second = split.parts()
    assert split.part_done(1, indexer.perceive_range(FIXTURES / "events.mp4", info, second)) is None  # waits
    seam = split.part_done(0, indexer.perceive_range(FIXTURES / "events.mp4", info, first))
    assert seam is not None and seam.sync[0][0] == 40.0
    run = indexer.perceive_range(FIXTURES / "events.mp4", info, seam)
    assert run.synced is not None and run.synced[0] == 40.0
    assert run.frames == 20 * 4 + 1  # (20, 40] at cut_fps 4
    assert [(r.span.start, r.span.end) for r in run.clips] == [(20.0, 30.0), (30.0, 40.0)]
    assert split.seam_done(run) is None and split.done
    _assert_same(split, events_whole)


def test_talk_and_a_real_film_split_are_their_whole_runs(indexer):
    for path, starts in [(FIXTURES / "talk.mp4", [0.0, 17.0, 35.0, 48.0]), (BUNNY, [0.0, 8.0, 15.0, 23.0])]:
        if not path.exists():
            pytest.skip(f"{path} is not here")
        _assert_same(_split(indexer, path, starts, seed=3), _whole(indexer, path))


def test_a_part_past_the_last_frame(indexer):
    """The last part finds no frames (a header that promised more): the seam before it runs to the end."""
    whole = _whole(indexer, FIXTURES / "frames.mp4")  # 10 s
    split = SplitFile([0.0, 5.0, 30.0])
    info = decode.probe(FIXTURES / "frames.mp4")
    runs = {s.part: indexer.perceive_range(FIXTURES / "frames.mp4", info, s) for s in split.parts()}
    assert runs[2].frames == 0 and not runs[2].clips
    follow = split.part_done(2, runs[2])
    assert follow is None
    follow = split.part_done(1, runs[1])
    assert follow is None
    follow = split.part_done(0, runs[0])
    while follow is not None:
        follow = split.seam_done(indexer.perceive_range(FIXTURES / "frames.mp4", info, follow))
    assert split.done
    _assert_same(split, whole)


@pytest.mark.parametrize(("duration", "part", "want"), [
    (60.0, 600.0, [0.0]),  # shorter than two parts: whole
    (1199.0, 600.0, [0.0]),
    (1200.0, 600.0, [0.0, 600.0]),
    (3601.5, 600.0, [0.0, 600.25, 1200.5, 1800.75, 2401.0, 3001.25]),  # even parts, on the 4 fps grid
    (60.0, 5.0, [0.0, 20.0, 40.0]),  # a part is at least two clips (10 s each)
    (60.0, 0.0, [0.0]),  # 0: no split
    (float("nan"), 600.0, [0.0]),  # unknown length (a live or header-less file): whole
    (0.0, 600.0, [0.0]),
])
def test_part_starts(duration, part, want):
    assert part_starts(duration, part, Settings(clip_seconds=10.0, cut_fps=4.0, fps=1.0)) == want


def test_part_starts_are_on_the_frame_grid_of_any_rate():
    """At 2.5 frames a second the grid is every 0.4 s: whole seconds are not all on it."""
    starts = part_starts(1000.0, 333.0, Settings(cut_fps=2.5, fps=1.0))
    assert len(starts) == 3
    assert all(abs(s * 2.5 - round(s * 2.5)) < 1e-9 for s in starts)
