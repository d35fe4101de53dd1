"""Take moments away: subtitles, chapters, an edit decision list, JSON, or one cut clip.

An answer (``vdisc ask``) and a search result (``vdisc search``) both reduce
to :class:`Cue` s — a video, a start and an end in seconds, and a line of
text — and each output format is a small writer of cues (``FORMATS``):

- ``srt``, ``vtt``: subtitles on the source video's timeline, one cue per
  moment, in time order (overlapping cues are kept: players show both).
- ``chapters``: FFmpeg's FFMETADATA1 chapters (millisecond START/END and a
  title), which keep end times and can be muxed into the file:
  ``ffmpeg -i movie.mp4 -i chapters.txt -map_metadata 1 -codec copy out.mp4``.
  YouTube-style "0:00 Title" lines were not chosen: they lose end times and
  must start at 0:00.
- ``json``: ``{"title", "source", "spans": [{"video", "video_id", "start",
  "end", "text"}]}`` in the result's own order; ``vdisc export`` reads it back.
- ``edl``: CMX3600, one event per moment in reel order (merged like the clip,
  see below), source timecode from the file's start, record timecode from
  00:00:00:00, non-drop-frame at the video's frame rate.

The subtitle and chapter formats describe one video's timeline, so moments
from several videos must be narrowed with ``video=``. :func:`cut_clip`
(``vdisc.cut``) cuts the moments out of their files into one video that lasts
their sum; the reel is in time order per video, overlapping moments of one
video merged so no footage repeats (:func:`reel`).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Callable, Literal

from pydantic import BaseModel, Field, ValidationError

from vdisc.cut import DEFAULT_FPS, ClipPart, ClipReport, cut_clip
from vdisc.errors import ConfigError, LibraryError
from vdisc.index.files import atomic_write

__all__ = ["FORMATS", "ClipPart", "ClipReport", "Cue", "Moments", "VideoFacts", "clip_parts", "cut_clip", "locate",
           "moments_of", "reel", "render", "timecode", "write_text_atomic", "writer"]

TEXT_CHARS = 200  # a cue's text is trimmed to this: a subtitle is a line, not a transcript
EDL_MAX_EVENTS = 999  # CMX3600 numbers events with three digits


class Cue(BaseModel):
    """One moment to export: seconds on the video's own timeline and a line of text."""

    video: str
    start: float
    end: float
    text: str = ""
    video_id: int | None = None


class Moments(BaseModel):
    """What ``export`` works on (and the ``json`` format): cues in the result's order, and a title."""

    title: str = ""
    source: Literal["answer", "search", "moments"] = "moments"
    cues: list[Cue] = Field(default_factory=list, alias="spans")

    model_config = {"populate_by_name": True}

    def videos(self) -> list[str]:
        """Video names in the order they first appear."""
        return list(dict.fromkeys(c.video for c in self.cues))


class VideoFacts(BaseModel):
    """What cutting needs to know about an indexed video."""

    id: int
    name: str
    path: str
    duration: float
    fps: float


# --------------------------------------------------------------------------- #
# results -> cues
# --------------------------------------------------------------------------- #


def moments_of(result: Any, *, video: str | None = None) -> Moments:
    """Cues of an Answer, a SearchResult, a Moments, or their JSON (``vdisc ask|search|export --json``).

    ``video`` keeps only the moments of the video with that name.
    Raises ConfigError for anything else, or when no moments are left.
    """
    from vdisc.agent.answer import Answer
    from vdisc.tools.search import SearchResult

    if isinstance(result, (str, bytes)):
        try:
            result = json.loads(result)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    try:
        if isinstance(result, dict):
            if "hits" in result:
                result = SearchResult.model_validate(result)
            elif "answer" in result:
                result = Answer.model_validate(result)
            elif "spans" in result:
                result = Moments.model_validate(result)
            else:
                raise ConfigError("JSON has no moments: expected the output of vdisc ask --json, "
                                  "vdisc search --json or vdisc export --format json")
    except ValidationError as exc:
        e = exc.errors()[0]
        where = ".".join(map(str, e.get("loc", ())))
        raise ConfigError(f"JSON does not hold moments: {where}: {e.get('msg', '')}") from None
    if isinstance(result, Moments):
        moments = result
    elif isinstance(result, Answer):
        moments = Moments(title=result.question, source="answer",
                          cues=[Cue(video=s.video, start=s.start, end=s.end, text=_answer_text(result, s))
                                for s in result.spans])
    elif isinstance(result, SearchResult):
        moments = Moments(title=result.query, source="search",
                          cues=[Cue(video=h.video, video_id=h.video_id, start=h.start, end=h.end, text=h.snippet)
                                for h in result.hits])
    else:
        raise ConfigError(f"cannot export a {type(result).__name__}: give an answer, a search result or moments")
    if video is not None:
        moments = moments.model_copy(update={"cues": [c for c in moments.cues if c.video == video]})
    if not moments.cues:
        what = "the answer has no moments" if moments.source == "answer" else "there are no moments"
        raise ConfigError(f"nothing to export: {what}" + (f" in {video}" if video is not None else ""))
    for i, c in enumerate(moments.cues, 1):
        if not (math.isfinite(c.start) and math.isfinite(c.end)) or c.start < 0 or c.end <= c.start:
            raise ConfigError(f"moment {i} ({c.video} {c.start:g}-{c.end:g} s) is not a time range")
    return moments


def _answer_text(answer: Any, span: Any) -> str:
    """A span's line: the first evidence inside it (what was said or shown), else the answer."""
    for e in answer.evidence:
        if e.video == span.video and e.start < span.end and e.end > span.start and e.text.strip():
            return _trim(e.text)
    return _trim(answer.answer)


def _trim(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= TEXT_CHARS else text[: TEXT_CHARS - 1].rstrip() + "…"


def reel(moments: Moments) -> list[Cue]:
    """The clip's (and the EDL's) order: per video in order of appearance, by time, overlaps merged."""
    out: list[Cue] = []
    for name in moments.videos():
        for c in sorted((c for c in moments.cues if c.video == name), key=lambda c: (c.start, c.end)):
            if out and out[-1].video == name and c.start <= out[-1].end:
                last = out[-1]
                out[-1] = last.model_copy(update={"end": max(last.end, c.end)})
            else:
                out.append(c)
    return out


# --------------------------------------------------------------------------- #
# writers: cues -> text
# --------------------------------------------------------------------------- #


def _one_video(moments: Moments, fmt: str) -> list[Cue]:
    names = moments.videos()
    if len(names) > 1:
        raise ConfigError(f"{fmt} describes one video's timeline but the moments come from {len(names)} videos "
                          f"({', '.join(names[:3])}{', ...' if len(names) > 3 else ''}); pick one with --video")
    return sorted(moments.cues, key=lambda c: (c.start, c.end))


def _clock(seconds: float, sep: str) -> str:
    ms = int(round(seconds * 1000))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def _line(cue: Cue) -> str:
    """Cue text on one line (a blank line would end an SRT/VTT cue early)."""
    return " ".join(cue.text.split()) or cue.video


def to_srt(moments: Moments, **_: Any) -> str:
    """SubRip: numbered cues, ``HH:MM:SS,mmm --> HH:MM:SS,mmm``, in time order."""
    return "".join(f"{i}\n{_clock(c.start, ',')} --> {_clock(c.end, ',')}\n{_line(c)}\n\n"
                   for i, c in enumerate(_one_video(moments, "srt"), 1))


def to_vtt(moments: Moments, **_: Any) -> str:
    """WebVTT: the header, a NOTE with the title, then ``HH:MM:SS.mmm --> HH:MM:SS.mmm`` cues."""
    cues = _one_video(moments, "vtt")

    def esc(text: str) -> str:  # VTT cue text is markup: & < > must be escaped, "-->" must not appear
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    head = "WEBVTT\n\n"
    if moments.title.strip():
        head += f"NOTE {esc(' '.join(moments.title.split()))}\n\n"
    return head + "".join(f"{i}\n{_clock(c.start, '.')} --> {_clock(c.end, '.')}\n{esc(_line(c))}\n\n"
                          for i, c in enumerate(cues, 1))


def _ffmeta(text: str) -> str:
    return re.sub(r"([=;#\\\n])", r"\\\1", text)


def to_chapters(moments: Moments, **_: Any) -> str:
    """FFMETADATA1 chapters in milliseconds, one per moment, in time order."""
    cues = _one_video(moments, "chapters")
    head = ";FFMETADATA1\n" + (f"title={_ffmeta(' '.join(moments.title.split()))}\n" if moments.title.strip() else "")
    return head + "".join(f"\n[CHAPTER]\nTIMEBASE=1/1000\nSTART={int(round(c.start * 1000))}\n"
                          f"END={int(round(c.end * 1000))}\ntitle={_ffmeta(_line(c))}\n" for c in cues)


def to_json(moments: Moments, **_: Any) -> str:
    """The moments as JSON, in the result's order; ``vdisc export`` reads it back."""
    return json.dumps(moments.model_dump(by_alias=True), indent=2, ensure_ascii=False) + "\n"


def frame_index(seconds: float, fps: float) -> int:
    """The frame shown at ``seconds``, rounding halves up (Python's round() would send 12.5 to 12)."""
    return int(math.floor(seconds * fps + 0.5))


def timecode(seconds: float, fps: float) -> str:
    """Non-drop-frame SMPTE timecode: frames counted at ``fps``, labelled in base round(fps)."""
    base = max(1, int(round(fps)))
    frames = frame_index(seconds, fps)
    f = frames % base
    s = frames // base
    return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}:{f:02d}"


def to_edl(moments: Moments, *, fps: float = DEFAULT_FPS, **_: Any) -> str:
    """CMX3600: one AA/V cut per moment of the reel, record timecode from 00:00:00:00."""
    cues = reel(moments)
    if len(cues) > EDL_MAX_EVENTS:
        raise ConfigError(f"an EDL holds at most {EDL_MAX_EVENTS} events; there are {len(cues)} moments")
    title = re.sub(r"[^\x20-\x7e]", "?", " ".join(moments.title.split()))[:70] or "vdisc export"
    lines = [f"TITLE: {title}", "FCM: NON-DROP FRAME", ""]
    rec = 0  # record position in frames: sums of frame counts, so events butt exactly
    for i, c in enumerate(cues, 1):
        src_in, src_out = frame_index(c.start, fps), frame_index(c.end, fps)
        length = src_out - src_in
        lines.append(f"{i:03d}  AX       AA/V  C        {timecode(src_in / fps, fps)} {timecode(src_out / fps, fps)} "
                     f"{timecode(rec / fps, fps)} {timecode((rec + length) / fps, fps)}")
        lines.append(f"* FROM CLIP NAME: {c.video}")
        if c.text.strip():
            lines.append(f"* COMMENT: {_line(c)}")
        lines.append("")
        rec += length
    return "\n".join(lines)


Writer = Callable[..., str]
FORMATS: dict[str, Writer] = {"srt": to_srt, "vtt": to_vtt, "chapters": to_chapters, "json": to_json, "edl": to_edl}


def writer(fmt: str) -> Writer:
    """The writer of format ``fmt``, or ConfigError naming the formats there are."""
    found = FORMATS.get(fmt.lower().strip())
    if found is None:
        raise ConfigError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    return found


def render(moments: Moments, fmt: str, *, fps: float = DEFAULT_FPS) -> str:
    """The moments in format ``fmt`` (one of ``FORMATS``)."""
    return writer(fmt)(moments, fps=fps)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file, so a failure leaves no half-written file."""
    path = Path(path)
    if not path.parent.is_dir():
        raise ConfigError(f"{path}: no such directory {path.parent}")
    atomic_write(path, text.encode("utf-8"))


# --------------------------------------------------------------------------- #
# the library's side: names -> files
# --------------------------------------------------------------------------- #


def locate(store: Any, moments: Moments) -> dict[str, VideoFacts]:
    """Each cue's video as indexed in ``store`` (by id when the cue has one, else by name).

    Raises LibraryError naming the first video the library does not hold.
    """
    out: dict[str, VideoFacts] = {}
    with store.session() as s:
        for c in moments.cues:
            if c.video in out:
                continue
            v = store.find_video(s, c.video_id) if c.video_id is not None else None
            if v is None or v.name != c.video:
                v = store.find_video(s, c.video)
            if v is None:
                raise LibraryError(f"no indexed video matches {c.video!r}; see vdisc ls")
            out[c.video] = VideoFacts(id=v.id, name=v.name, path=v.path, duration=v.duration, fps=v.fps or 0.0)
    return out


def clip_parts(moments: Moments, facts: dict[str, VideoFacts]) -> list[ClipPart]:
    """The reel as file windows, each clamped to its video's duration."""
    parts = []
    for c in reel(moments):
        f = facts[c.video]
        end = min(c.end, f.duration) if f.duration > 0 else c.end
        if end - c.start <= 0:
            raise ConfigError(f"moment {c.video} {c.start:g}-{c.end:g} s lies past the video's end "
                              f"({f.duration:g} s)")
        parts.append(ClipPart(path=f.path, start=c.start, end=end))
    return parts
