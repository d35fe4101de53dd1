"""A long file split by time range, its parts perceived at once, put back together as one run makes it.

Part k perceives the frames of ``[T_k, T_k+1)`` with a fresh segmenter, so
its first clips are not the ones a run through the whole file cuts there. But
from a cut on, nothing before it matters: the new shot starts at the cut with
that one frame, and the OCR memo starts empty at every shot
(``perceive.Perceiver``). So at each seam a short *seam run* goes on from the
state the parts before it left (their last clip's segmenter state and OCR
memo, as a checkpoint keeps them) until it makes a cut that part k made too;
part k's clips from that cut on follow, renumbered. Nothing else differs:
the clips, frames, vectors and text are those of one sequential run.

A part with no such cut (one shot longer than the part, a fixed camera) is
gone through whole by its seam run: still exactly the sequential result, but
that part's own work is lost. Speech is not split: Whisper's windows follow
one another, so a file's words are one task, run beside its frame parts.
"""

from __future__ import annotations

import copy
import math

from vdisc.config import Settings

from .perceive import ClipResult
from .pipeline import CutMark, FrameRange, RangeRun

MIN_PART_CLIPS = 2  # a part is at least this many clips long, or splitting costs more than it gives


def part_starts(duration: float, part_seconds: float, settings: Settings) -> list[float]:
    """Where the parts of a ``duration``-second file start: ``[0.0]`` (no split) for a short file, a file of
    unknown length or ``part_seconds`` 0; else about ``part_seconds`` apart, each on the frame grid
    (``k / max(cut_fps, fps)``), so that a part samples the very frames a whole run samples."""
    if part_seconds <= 0 or not math.isfinite(duration) or duration <= 0:
        return [0.0]
    n = int(duration // max(part_seconds, MIN_PART_CLIPS * settings.clip_seconds))
    if n < 2:
        return [0.0]
    grid = max(settings.cut_fps, settings.fps)
    starts = sorted({round(k * duration / n * grid) / grid for k in range(n)})
    return [s for s in starts if s < duration]


class SplitFile:
    """One split file's parts and seams: which ranges to run, and their clips put together in order.

    Call :meth:`parts` for the ranges to run first, :meth:`part_done` and
    :meth:`seam_done` as their runs come back: each returns the seam run that
    can start now, if one can. :attr:`done` says when ``clips``, ``end`` and
    ``decoder`` are the whole file's.
    """

    def __init__(self, starts: list[float]) -> None:
        assert len(starts) >= 2 and starts[0] == 0.0
        self.starts = starts
        self.runs: dict[int, RangeRun] = {}
        self.clips: list[ClipResult] = []
        self.resume: FrameRange | None = None  # where the clips put together so far go on from
        self.next = 1  # the part whose seam is next
        self.seam_running = False
        self.done = False
        self.end: float = 0.0
        self.decoder = ""
        self.channels: list[str] = []

    def parts(self) -> list[FrameRange]:
        ends = [*self.starts[1:], None]
        return [FrameRange(start=s, end=e, part=k) for k, (s, e) in enumerate(zip(self.starts, ends))]

    def part_done(self, k: int, run: RangeRun) -> FrameRange | None:
        self.runs[k] = run
        self.channels = run.channels
        if k == 0:
            self.clips = list(run.clips) if run.state is not None else []
            self.resume = FrameRange(state=run.state) if run.state is not None else FrameRange()
            self.decoder = run.decoder
        return self._seam()

    def seam_done(self, run: RangeRun) -> FrameRange | None:
        k, part = self.next, self.runs[self.next]
        self.seam_running = False
        self.clips.extend(run.clips)
        self.decoder = run.decoder or self.decoder
        if run.synced is not None:
            self._follow(part, run)
        elif run.end is not None:  # the seam run went to the file's end
            self._finish(run.end)
        else:
            self.resume = FrameRange(state=run.state) if run.state is not None else self._restart()
        self.next = k + 1
        # the last seam runs to the file's end (see _seam), so the file is done by then
        assert self.done or (self.next < len(self.starts) and part.frames > 0)
        return self._seam()

    # ---- inside ---------------------------------------------------------------------
    def _seam(self) -> FrameRange | None:
        """The seam run of part ``next``, once the parts before it are put together and it is back."""
        k = self.next
        if self.done or self.seam_running or self.resume is None or k not in self.runs:
            return None
        part = self.runs[k]
        last = k == len(self.starts) - 1 or part.frames == 0  # no frames: the file ended before this part
        span = copy.copy(self.resume)
        span.end = None if last else self.starts[k + 1]
        span.sync = list(part.marks) if part.frames else []
        span.part = -1  # its progress is not the file's: it redoes what a part did
        self.seam_running = True
        return span

    def _follow(self, part: RangeRun, seam: RangeRun) -> None:
        """From the common cut on, the part's clips are the file's: renumbered, then its end or state."""
        assert seam.synced is not None
        t, part_clip, part_shot = seam.synced
        _, clip_idx, shot_idx = seam.marks[-1]
        dc, ds = clip_idx - part_clip, shot_idx - part_shot
        for r in part.clips:
            if r.span.start >= t:
                r.span.idx += dc
                r.span.shot += ds
                self.clips.append(r)
        if part.end is not None:
            self._finish(part.end)
        elif part.state is not None:
            self.resume = FrameRange(state=_renumbered(part.state, seam, t, dc, ds))
        else:  # the part gave out no clip after the cut: go on from the seam run's state at the cut
            assert seam.state is not None
            self.resume = FrameRange(state=seam.state)
        self.decoder = part.decoder or self.decoder

    def _finish(self, end: float) -> None:
        self.done, self.end = True, end

    def _restart(self) -> FrameRange:
        """No state to go on from (no clip with frames given out yet): from the top again."""
        self.clips = []
        return FrameRange()


def _renumbered(state: dict, seam: RangeRun, t: float, dc: int, ds: int) -> dict:
    """A part's end state in the file's numbering (its cuts after ``t`` joined to the seam run's)."""
    out = copy.deepcopy(state)
    seg = out["segmenter"]
    seg["clip_idx"] += dc
    seg["shot_idx"] += ds
    before = seam.state["segmenter"]["cuts"] if seam.state is not None else [m[0] for m in seam.marks]
    seg["cuts"] = [c for c in before if c <= t] + [c for c in seg["cuts"] if c > t]
    if out.get("ocr_shot") is not None:
        out["ocr_shot"] += ds
    return out


__all__ = ["CutMark", "SplitFile", "part_starts"]
