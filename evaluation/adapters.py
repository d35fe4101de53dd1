"""Converters from public benchmark annotations to vdisc's evaluation JSONL.

Each converter reads one annotation file and returns a list of records in the
format of :mod:`vdisc.evaluation.dataset`::

    {"video": str, "question": str, "spans": [[start, end], ...], "answer": str|null,
     "options": [str]|null, "kind": str|null}

Formats:

``charades_sta``
    Charades-STA text lines ``VIDEO_ID START END##sentence``. The sentence is a
    grounding query and becomes the question as is; kind ``"grounding"``.
``qvhighlights``
    QVHighlights JSONL (``qid``, ``query``, ``vid``, ``duration``,
    ``relevant_windows``). Windows are seconds relative to the clip named by
    ``vid``; lines without windows (test split) get ``spans: []``; kind
    ``"highlight"``.
``mcq``
    Multiple choice, detected per item by its keys: LVBench (``key`` + ``qa``,
    options embedded in the question as ``(A) ...`` lines, answer a letter,
    optional ``time_reference`` ``"mm:ss-mm:ss"``) or MLVU (``question`` +
    ``candidates``, answer the option text). The answer is always stored as
    the option *text*.

Video paths are ``{video_dir}/{name}`` when ``video_dir`` is given, else the
bare file name, which the dataset loader resolves against the JSONL file's
folder. :func:`convert` turns a relative ``video_dir`` into an absolute path,
since it means "relative to where I am", not "relative to the output file".

Malformed input raises :class:`ValueError` with a one-line message naming the
file and the line (or item) at fault. Command line::

    python -m vdisc.evaluation.adapters FORMAT SRC OUT [--video-dir D] [--video-ext .mp4]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

Record = dict[str, Any]

__all__ = ["FORMATS", "charades_sta", "convert", "main", "mcq", "qvhighlights"]


# ----------------------------------------------------------------- helpers


def _read_text(src: str | os.PathLike[str]) -> str:
    path = Path(src).expanduser()
    if not path.is_file():
        raise ValueError(f"{path}: no such annotation file")
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _video_path(name: str, video_dir: str | os.PathLike[str] | None) -> str:
    if video_dir is None or str(video_dir) == "":
        return name
    return (Path(video_dir) / name).as_posix()


def _with_ext(name: str, video_ext: str) -> str:
    if video_ext and not video_ext.startswith("."):
        video_ext = "." + video_ext
    return name + video_ext


def _seconds(value: Any, what: str) -> float:
    """A finite, non-negative number of seconds, or ValueError mentioning ``what``."""
    if isinstance(value, bool):
        raise ValueError(f"{what}: {value!r} is not a number of seconds")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: {value!r} is not a number of seconds") from None
    if not math.isfinite(x) or x < 0:
        raise ValueError(f"{what}: {value!r} is not a non-negative number of seconds")
    return x


def _span(start: Any, end: Any, what: str) -> list[float]:
    a, b = _seconds(start, what), _seconds(end, what)
    if b < a:
        raise ValueError(f"{what}: span [{a:g}, {b:g}] ends before it starts")
    return [a, b]


def _record(video: str, question: str, spans: list[list[float]], answer: str | None,
            options: list[str] | None, kind: str | None) -> Record:
    return {"video": video, "question": question, "spans": spans,
            "answer": answer, "options": options, "kind": kind}


def _json_items(src: str | os.PathLike[str]) -> Iterator[tuple[str, Any]]:
    """(location, object) for a JSON list / single object / JSONL file."""
    text = _read_text(src)
    where = str(Path(src).expanduser())
    if not text.strip():
        raise ValueError(f"{where}: empty annotation file")
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        whole = None
        jsonl = True
    else:
        jsonl = False
    if not jsonl:
        if isinstance(whole, dict):
            lines = [n for n, line in enumerate(text.splitlines(), 1) if line.strip()]
            if len(lines) == 1:  # a one-line JSONL file
                yield f"{where}:{lines[0]}", whole
                return
            whole = [whole]
        if not isinstance(whole, list):
            raise ValueError(f"{where}: expected a JSON list of items, got {type(whole).__name__}")
        for i, obj in enumerate(whole):
            yield f"{where}: item {i}", obj
        return
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}:{n}: not JSON ({exc.msg} at column {exc.colno})") from None
        yield f"{where}:{n}", obj


def _need(obj: Any, key: str, kind: type | tuple[type, ...], loc: str) -> Any:
    if not isinstance(obj, dict):
        raise ValueError(f"{loc}: expected a JSON object, got {type(obj).__name__}")
    if key not in obj:
        raise ValueError(f"{loc}: missing {key!r}")
    value = obj[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise ValueError(f"{loc}: {key!r} should be {names}, got {type(value).__name__}")
    return value


# ------------------------------------------------------------ charades_sta

_CHARADES = re.compile(r"^\s*(\S+)\s+(\S+)\s+(\S+)\s*##(.*)$")


def charades_sta(src: str | os.PathLike[str], video_dir: str | os.PathLike[str] | None = None,
                 video_ext: str = ".mp4") -> list[Record]:
    """Charades-STA lines ``VIDEO_ID START END##sentence`` -> grounding records."""
    where = str(Path(src).expanduser())
    records = []
    for n, line in enumerate(_read_text(src).splitlines(), 1):
        if not line.strip():
            continue
        m = _CHARADES.match(line)
        if m is None:
            raise ValueError(f"{where}:{n}: expected 'VIDEO_ID START END##sentence', got {line.strip()[:60]!r}")
        vid, start, end, sentence = m.groups()
        sentence = sentence.strip()
        if not sentence:
            raise ValueError(f"{where}:{n}: empty sentence after '##'")
        span = _span(start, end, f"{where}:{n}")
        records.append(_record(_video_path(_with_ext(vid, video_ext), video_dir), sentence,
                               [span], None, None, "grounding"))
    return records


# ------------------------------------------------------------ qvhighlights


def qvhighlights(src: str | os.PathLike[str], video_dir: str | os.PathLike[str] | None = None,
                 video_ext: str = ".mp4") -> list[Record]:
    """QVHighlights JSONL -> highlight records (windows are clip-relative seconds)."""
    records = []
    for loc, obj in _json_items(src):
        query = _need(obj, "query", str, loc).strip()
        vid = _need(obj, "vid", str, loc).strip()
        if not query or not vid:
            raise ValueError(f"{loc}: empty 'query' or 'vid'")
        windows = obj.get("relevant_windows") or []
        if not isinstance(windows, list):
            raise ValueError(f"{loc}: 'relevant_windows' should be a list of [start, end]")
        spans = []
        for w in windows:
            if not isinstance(w, (list, tuple)) or len(w) != 2:
                raise ValueError(f"{loc}: relevant window {w!r} is not [start, end]")
            spans.append(_span(w[0], w[1], loc))
        records.append(_record(_video_path(_with_ext(vid, video_ext), video_dir), query,
                               spans, None, None, "highlight"))
    return records


# --------------------------------------------------------------------- mcq

_OPTION = re.compile(r"^\s*\(([A-Za-z])\)\s*(.*?)\s*$")
_CLOCK = r"\d+(?::\d{1,2}){0,2}(?:\.\d+)?"
_RANGE = re.compile(rf"^\s*({_CLOCK})\s*-\s*({_CLOCK})\s*$")


def _clock(text: str) -> float:
    """'ss', 'mm:ss' or 'hh:mm:ss' (optionally fractional) -> seconds."""
    total = 0.0
    for part in text.split(":"):
        total = total * 60 + float(part)
    return total


def _time_reference(ref: str, loc: str) -> list[list[float]]:
    spans = []
    for piece in re.split(r"[,;]", ref):
        if not piece.strip():
            continue
        m = _RANGE.match(piece)
        if m is None:
            raise ValueError(f"{loc}: time_reference {ref!r} is not 'mm:ss-mm:ss' or 'hh:mm:ss-hh:mm:ss'")
        spans.append(_span(_clock(m.group(1)), _clock(m.group(2)), loc))
    return spans


def _split_options(text: str, loc: str) -> tuple[str, list[str], list[str]]:
    """LVBench question text -> (question, option texts, option letters)."""
    stem, options, letters = [], [], []
    for line in text.splitlines():
        m = _OPTION.match(line)
        if m:
            letters.append(m.group(1).upper())
            options.append(m.group(2))
        elif options and line.strip():
            # A wrapped option: continue the previous one.
            options[-1] = f"{options[-1]} {line.strip()}"
        elif not options:
            stem.append(line)
    question = "\n".join(stem).strip()
    if not question:
        raise ValueError(f"{loc}: question has no text before its options")
    if len(options) < 2:
        raise ValueError(f"{loc}: expected options as '(A) ...' lines in the question, found {len(options)}")
    expected = [chr(ord("A") + i) for i in range(len(letters))]
    if letters != expected:
        raise ValueError(f"{loc}: options are lettered {''.join(letters)}, expected {''.join(expected)}")
    return question, options, letters


def _lvbench(obj: dict[str, Any], loc: str, video_dir: str | os.PathLike[str] | None,
             video_ext: str) -> list[Record]:
    key = _need(obj, "key", str, loc).strip()
    if not key:
        raise ValueError(f"{loc}: empty 'key'")
    qas = _need(obj, "qa", list, loc)
    video = _video_path(_with_ext(key, video_ext), video_dir)
    records = []
    for i, qa in enumerate(qas):
        qloc = f"{loc} qa {qa.get('uid', i) if isinstance(qa, dict) else i}"
        text = _need(qa, "question", str, qloc)
        question, options, letters = _split_options(text, qloc)
        letter = _need(qa, "answer", str, qloc).strip().strip("()").strip().upper()
        if letter not in letters:
            raise ValueError(f"{qloc}: answer {qa['answer']!r} is not one of {''.join(letters)}")
        ref = qa.get("time_reference") or ""
        if not isinstance(ref, str):
            raise ValueError(f"{qloc}: 'time_reference' should be a string like '00:15-00:19'")
        types = qa.get("question_type")
        if isinstance(types, str):
            types = [types]
        kind = types[0] if isinstance(types, list) and types and isinstance(types[0], str) else "mcq"
        records.append(_record(video, question, _time_reference(ref, qloc),
                               options[letters.index(letter)], options, kind))
    return records


def _mlvu(obj: dict[str, Any], loc: str, video_dir: str | os.PathLike[str] | None) -> Record:
    video = _need(obj, "video", str, loc).strip()
    question = _need(obj, "question", str, loc).strip()
    candidates = _need(obj, "candidates", list, loc)
    answer = _need(obj, "answer", str, loc)
    if not video or not question:
        raise ValueError(f"{loc}: empty 'video' or 'question'")
    if len(candidates) < 2 or not all(isinstance(c, str) for c in candidates):
        raise ValueError(f"{loc}: 'candidates' should be a list of at least two strings")
    if answer not in candidates:
        stripped = [c.strip() for c in candidates]
        if answer.strip() not in stripped:
            raise ValueError(f"{loc}: answer {answer!r} is not one of the candidates")
        answer = candidates[stripped.index(answer.strip())]
    kind = obj.get("question_type")
    kind = kind if isinstance(kind, str) and kind else "mcq"
    return _record(_video_path(video, video_dir), question, [], answer, list(candidates), kind)


def mcq(src: str | os.PathLike[str], video_dir: str | os.PathLike[str] | None = None,
        video_ext: str = ".mp4") -> list[Record]:
    """LVBench or MLVU multiple choice (detected per item) -> records.

    ``video_ext`` applies to LVBench keys only; MLVU names carry their extension.
    """
    records: list[Record] = []
    for loc, obj in _json_items(src):
        if isinstance(obj, dict) and "qa" in obj:
            records.extend(_lvbench(obj, loc, video_dir, video_ext))
        elif isinstance(obj, dict) and "candidates" in obj:
            records.append(_mlvu(obj, loc, video_dir))
        else:
            keys = ", ".join(sorted(obj)) if isinstance(obj, dict) else type(obj).__name__
            raise ValueError(f"{loc}: neither LVBench ('key', 'qa') nor MLVU ('question', 'candidates'); has {keys}")
    return records


# ------------------------------------------------------------------ convert

FORMATS: dict[str, Callable[..., list[Record]]] = {
    "charades_sta": charades_sta,
    "qvhighlights": qvhighlights,
    "mcq": mcq,
}


def convert(fmt: str, src: str | os.PathLike[str], out_path: str | os.PathLike[str],
            video_dir: str | os.PathLike[str] | None = None, video_ext: str = ".mp4") -> int:
    """Convert ``src`` in format ``fmt`` and write JSONL to ``out_path``; return the count.

    Nothing is written unless the whole file converts. A relative ``video_dir``
    is made absolute (against the current directory).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if video_dir is not None and str(video_dir) != "":
        video_dir = Path(video_dir).expanduser().resolve()
    records = FORMATS[fmt](src, video_dir=video_dir, video_ext=video_ext)
    if not records:
        raise ValueError(f"{Path(src).expanduser()}: no questions found")
    out = Path(out_path).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    tmp.replace(out)
    return len(records)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vdisc.evaluation.adapters",
        description="Convert a public benchmark's annotations to vdisc evaluation JSONL.",
    )
    parser.add_argument("format", choices=list(FORMATS), help="annotation format of SRC")
    parser.add_argument("src", help="annotation file")
    parser.add_argument("out", help="JSONL file to write")
    parser.add_argument("--video-dir", default=None, help="folder holding the videos (default: next to OUT)")
    parser.add_argument("--video-ext", default=".mp4", help="extension added to video ids (default .mp4)")
    args = parser.parse_args(argv)
    try:
        n = convert(args.format, args.src, args.out, video_dir=args.video_dir, video_ext=args.video_ext)
    except (ValueError, OSError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"error: {msg}", file=sys.stderr)
        return 2
    print(f"wrote {n} questions to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
