"""Events with their true extent: utterances from timed words, text tracks from timed OCR reads.

Clips are cut by shots and length, so what is said or shown rarely fits one:
a sentence runs across a clip boundary, a sign stays up for three clips. An
event is indexed next to the clips with the extent of the thing itself:

- an *utterance* is a run of Whisper words up to a sentence end or a pause
  (``UTTERANCE_GAP``); its edges are word-accurate.
- a *text track* is the same on-screen line followed across consecutive OCR
  reads (fuzzy-matched, ``TRACK_MATCH``, so OCR noise does not split it),
  from the first read that shows it to the last, across clip and shot
  boundaries; a line that changes starts a new track. Reads are a few per
  clip, so each edge is only known to lie between a read without the line
  and one with it: ``bounds`` keeps both, the span is their middle, and
  ``ground`` looks at the frames in between to time it to the frame.

Both builders are online (fed batch by batch, the open event carried over),
so a file written in one batch and a live source followed clip by clip get
the same events.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from typing import Any, Sequence

UTTERANCE_GAP = 0.6  # seconds of silence that end an utterance (Whisper leaves ~0.1-0.3 s between words)
TRACK_MATCH = 0.8  # difflib ratio at which two OCR readings are the same line (one or two misread letters)
SENTENCE_END = re.compile(r"[.?!…][\"'”’)\]]*$")
NUMBER = re.compile(r"(?<![\w])\d+(?:[.,:]\d+)*(?![\w])")  # a number standing alone, not a digit inside a word


@dataclass
class EventSpan:
    """An utterance or a text track: its best span, the text, and where its edges may lie."""

    kind: str  # utterance | track
    start: float
    end: float
    text: str
    bounds: tuple[float, float, float, float]  # start in [b0, b1], end in [b2, b3] (equal for utterances)


def utterances(words: Sequence[Any], gap: float = UTTERANCE_GAP) -> list[list[Any]]:
    """Timed words split into utterances at sentence ends and pauses longer than ``gap``."""
    out: list[list[Any]] = []
    cur: list[Any] = []
    for w in words:
        if cur and ends_utterance(cur[-1], w, gap):
            out.append(cur)
            cur = []
        cur.append(w)
    if cur:
        out.append(cur)
    return out


def ends_utterance(prev: Any, nxt: Any, gap: float = UTTERANCE_GAP) -> bool:
    return nxt.start - prev.end > gap or bool(SENTENCE_END.search(prev.text.strip()))


def utterance_span(words: list[Any]) -> EventSpan:
    start, end = round(float(words[0].start), 3), round(float(words[-1].end), 3)
    return EventSpan("utterance", start, end, " ".join(w.text.strip() for w in words).strip(),
                     (start, start, end, end))


def same_line(a: str, b: str) -> bool:
    """Two OCR readings of one line: equal once case and spacing are folded, or nearly so.

    Numbers standing alone must agree exactly: a changed number is a changed
    message (a score, a price, a gate, a countdown), while a misread letter is
    noise ("EXlT 4" is "EXIT 4"; "EXIT 5" is not). OCR drops and adds spaces
    between tight letters, so spacing alone never tells two readings apart
    ("ASSEMBLYPOINT7" is "ASSEMBLY POINT 7").
    """
    a, b = normal(a), normal(b)
    if a == b or a.replace(" ", "") == b.replace(" ", ""):
        return True
    if not a or not b or NUMBER.findall(a) != NUMBER.findall(b):
        return False
    return SequenceMatcher(None, a, b).ratio() >= TRACK_MATCH


def normal(text: str) -> str:
    return " ".join(text.lower().split())


class UtteranceBuilder:
    """Words in time order in, finished utterances out; the last one stays open until it ends."""

    def __init__(self) -> None:
        self.open: list[Any] = []

    def feed(self, words: Sequence[Any]) -> list[EventSpan]:
        done = []
        for w in words:
            if self.open and ends_utterance(self.open[-1], w):
                done.append(utterance_span(self.open))
                self.open = []
            self.open.append(w)
        return done

    def close(self) -> list[EventSpan]:
        done, self.open = ([utterance_span(self.open)] if self.open else []), []
        return done


@dataclass
class _Track:
    first: float  # first read that shows it
    last: float  # last read that shows it
    before: float  # the read before ``first`` (it did not show the line), or where the media began
    readings: list[str] = field(default_factory=list)


class TrackBuilder:
    """Timed OCR reads in time order in, finished text tracks out; lines still shown stay open."""

    def __init__(self, start: float = 0.0) -> None:
        self.open: list[_Track] = []
        self.prev_read = start  # time of the last read, or where the media began

    def feed(self, reads: Sequence[tuple[float, Sequence[str]]]) -> list[EventSpan]:
        done: list[EventSpan] = []
        for ts, lines in reads:
            still: list[_Track] = []
            for line in dict.fromkeys(x.strip() for x in lines if x.strip()):
                track = next((t for t in self.open if all(t is not u for u in still)
                              and same_line(t.readings[-1], line)), None)
                if track is None:
                    track = _Track(first=ts, last=ts, before=self.prev_read)
                track.last = ts
                track.readings.append(line)
                still.append(track)
            done.extend(_span(t, ts) for t in self.open if all(t is not u for u in still))  # gone: it ended
            self.open, self.prev_read = still, ts
        return done

    def close(self, end: float) -> list[EventSpan]:
        """Finish every open track: shown until at most ``end`` (where the media stops)."""
        done = [_span(t, max(end, t.last)) for t in self.open]
        self.open = []
        return done


def track_text(readings: Sequence[str]) -> str:
    """The text of a track from its readings: the one OCR gave most often, where a reading also counts for
    every fuller reading that holds it (a frame where OCR missed the "B" of "HALL B", or read "HAL", still
    saw part of "HALL B"); of equal counts, the earliest."""
    counts = Counter(readings)
    folded = {r: normal(r) for r in counts}

    def support(r: str) -> int:
        return sum(n for s, n in counts.items() if s == r or (folded[s] != folded[r] and folded[s] in folded[r]))

    return max(counts, key=support)


def _span(t: _Track, after: float) -> EventSpan:
    """A track's span: each edge in the middle of the interval it is known to lie in."""
    text = track_text(t.readings)
    b = (round(t.before, 3), round(t.first, 3), round(t.last, 3), round(after, 3))
    return EventSpan("track", round(0.5 * (b[0] + b[1]), 3), round(0.5 * (b[2] + b[3]), 3), text, b)
