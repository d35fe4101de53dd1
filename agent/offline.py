"""The offline planner: a fixed, deterministic policy that needs no LLM.

1. search several phrasings of the question (its content words as a phrase,
   its keywords, each quoted string), in one step;
2. fuse the hits by moment and inspect the best few candidate windows;
3. ground the most convincing one;
4. answer with the grounded span and the evidence it rests on, or say that
   nothing convincing was found (with the nearest evidence), never a guess.

Time words are read first (``temporal``) and become search arguments: "the
first time", "initially", "when did it begin" ask for the earliest relevant
moment; "the latest", "most recently", "the last time", "now" for the most
recent; "in the last 10 minutes", "in the past hour", "since 10 minutes ago"
for the final stretch of each video (``last``); "since 1:20", "after 5
minutes in" for moments after a time (``after``). With an order, candidates
and inspected windows are taken in time order among the relevant ones (those
scoring at least ``ORDER_FRACTION`` of the best), not by score alone.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from langchain_core.messages import AnyMessage
from pydantic import BaseModel

from vdisc.timefmt import hms
from vdisc.tools.search import ORDER_FRACTION, parse_duration

from .answer import Observation, end_sentence, top_moment
from .toolbox import Toolbox

N_INSPECT = 2  # candidate windows zoomed into
MIN_CONFIDENCE = 0.15  # below this the best moment is reported as "not found"
EXTRA_SPAN_CONFIDENCE = 0.5  # other inspected windows this sure are listed as further spans

# Words that frame a question about a video rather than describe the moment.
FRAMING = re.compile(
    r"\b(when|where|what time|at what (point|time|moment)|which (part|moment|scene|point)|how long|"
    r"in (the|this) (video|clip|film|movie)|does|do|did|is|are|was|were|can you|could you|please|"
    r"tell me|show me|find|the moment|the part|the scene|someone|somebody|they|he|she|"
    r"talk(s|ed|ing)? about|mention(s|ed)?|say(s)?|said|spoken|speak(s)?|discuss(es|ed)?|come(s)? up|"
    r"(is |are )?(shown|displayed|written|visible)( on (the )?screen)?|on (the )?screen|appear(s|ed)?)\b",
    re.IGNORECASE,
)
# Words that say which channel the moment lives in.
SPEECH_HINT = re.compile(r"\b(talk\w*|mention\w*|say|says|said|spoken|speak\w*|discuss\w*|hear\w*|voice|"
                         r"narrat\w*)\b", re.IGNORECASE)
TEXT_HINT = re.compile(r"\b(shown|written|on (the )?screen|sign|text|read|title|displayed|label|caption)\b",
                       re.IGNORECASE)
HINT_BONUS = 0.3  # for an inspected window whose evidence is in the channel the question names

# ---- time words ------------------------------------------------------------------
_NUMBER_WORDS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
                 "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20,
                 "thirty": 30, "forty": 40, "forty-five": 45, "fifty": 50, "sixty": 60, "ninety": 90,
                 "few": 3, "a few": 3, "couple of": 2, "a couple of": 2, "half a": 0.5, "half an": 0.5, "half": 0.5}
_NUM = (r"(?P<n>\d+(?:\.\d+)?|" + "|".join(sorted((re.escape(w) for w in _NUMBER_WORDS), key=len, reverse=True))
        + r")")
_UNIT = r"(?P<u>seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h|days?|d)"
_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
# "in the last 10 minutes", "over the past hour", "during the previous half hour"
_LAST_WINDOW = re.compile(r"\b(?:(?:in|during|within|over|for|from)\s+)?(?:the\s+)?(?:last|past|previous|final)\s+"
                          r"(?:" + _NUM + r"\s*)?" + _UNIT + r"\b", re.IGNORECASE)
# "in the last 1h30m", "since 2h30m ago": compact spans, read like --last
_COMPACT = re.compile(r"\b(?:(?:in|during|within|over|for|from)\s+)?(?:the\s+)?(?:(?:last|past|previous|final)\s+"
                      r"(?P<c>(?:\d+(?:\.\d+)?[dhms]){2,})|(?:since|from|after)\s+(?P<a>(?:\d+(?:\.\d+)?[dhms]){2,})"
                      r"\s+ago)\b", re.IGNORECASE)
# "since 10 minutes ago", "since an hour ago"
_SINCE_AGO = re.compile(r"\b(?:since|from|after)\s+" + _NUM + r"\s*" + _UNIT + r"\s+ago\b", re.IGNORECASE)
# "since 1:20", "after 0:05:00"
_SINCE_CLOCK = re.compile(r"\b(?:since|after|from)\s+(?:the\s+)?(?P<t>\d+:\d{2}(?::\d{2})?(?:\.\d+)?)"
                          r"(?:\s+mark)?\b", re.IGNORECASE)
# "since 5 minutes in", "after the 10 minute mark", "from minute 5"
_SINCE_IN = re.compile(r"\b(?:since|after|from)\s+(?:the\s+)?" + _NUM + r"[\s-]*" + _UNIT
                       + r"(?:\s+(?:in|into(?:\s+the\s+\w+)?)|\s+mark)\b", re.IGNORECASE)
_SINCE_UNIT_N = re.compile(r"\b(?:since|after|from)\s+(?P<u>second|minute|hour)\s+(?P<n>\d+(?:\.\d+)?)\b",
                           re.IGNORECASE)
_EARLIEST = re.compile(r"\b(?:for\s+the\s+(?:very\s+)?first\s+time|the\s+(?:very\s+)?first\s+time|first\s+time|"
                       r"(?:the\s+)?(?:very\s+)?first|earliest|initially|at\s+first|originally|"
                       r"to\s+begin\s+with|at\s+the\s+(?:start|beginning))\b", re.IGNORECASE)
_BEGIN = re.compile(r"\b(?:begin|begins|began|beginning|start|starts|started|starting)\b", re.IGNORECASE)
_WHEN = re.compile(r"\b(?:when|what\s+time|at\s+what\s+(?:point|time|moment)|which\s+(?:moment|point))\b",
                   re.IGNORECASE)
_LATEST = re.compile(r"\b(?:(?:the\s+)?most\s+recent(?:ly)?|(?:the\s+)?latest|lately|recently|"
                     r"(?:for\s+)?the\s+last\s+time|last\s+time|currently|(?:right|just)\s+now|at\s+present|"
                     r"presently|now|(?:the\s+)?last)\b", re.IGNORECASE)


class TimeHint(BaseModel):
    """What a question says about time, as search arguments, and the question without those words."""

    order: Literal["relevance", "earliest", "latest"] = "relevance"
    last: float | None = None  # seconds: only the final stretch of each video
    after: float | None = None  # seconds from the start of the video
    text: str

    def search_args(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.order != "relevance":
            out["order"] = self.order
        if self.last is not None:
            out["last"] = self.last
        if self.after is not None:
            out["after"] = self.after
        return out


def _amount(m: re.Match[str]) -> float:
    n = (m.groupdict().get("n") or "1").lower()
    value = float(n) if n[0].isdigit() else float(_NUMBER_WORDS[" ".join(n.split())])
    return value * _UNIT_SECONDS[m.group("u")[0].lower()]


def _clock(text: str) -> float:
    seconds = 0.0
    for part in text.split(":"):
        seconds = seconds * 60 + float(part)
    return seconds


def temporal(question: str) -> TimeHint:
    """The time words of a question (order, final window, start time) and the question without them.

    Windows are read before single words, so "in the last 10 minutes" is a
    window while "the last time" or "shown last" asks for the latest moment.
    """
    text, hint = question, TimeHint(text=question)
    for pattern, kind in ((_COMPACT, "compact"), (_SINCE_AGO, "last"), (_LAST_WINDOW, "last"),
                          (_SINCE_CLOCK, "clock"), (_SINCE_IN, "after"), (_SINCE_UNIT_N, "after")):
        m = pattern.search(text)
        if m is None:
            continue
        if kind in ("last", "compact"):
            seconds = parse_duration(m.group("c") or m.group("a")) if kind == "compact" else _amount(m)
            hint.last = seconds if hint.last is None else min(hint.last, seconds)
        elif hint.after is None:
            hint.after = _clock(m.group("t")) if kind == "clock" else _amount(m)
        text = text[: m.start()] + " " + text[m.end():]
    early, late = _EARLIEST.search(text), _LATEST.search(text)
    begin = _BEGIN.search(text) if _WHEN.search(text) else None
    early = min((m for m in (early, begin) if m is not None), key=lambda m: m.start(), default=None)
    if early is not None and (late is None or early.start() <= late.start()):
        hint.order = "earliest"
        text = _EARLIEST.sub(" ", text)
        text = _BEGIN.sub(" ", text) if begin is not None else text
    elif late is not None:
        hint.order = "latest"
        text = _LATEST.sub(" ", text)
    hint.text = " ".join(text.split()).strip(" ,.;:!?") or question.strip()
    return hint


STOP = frozenset(
    "a an and are as at be been but by for from has have he her his i if in into is it its me my of on or our she "
    "so than that the their them then there these they this those to was we were what which who why will with you "
    "your get gets got say says said mention mentions mentioned talk talks about appear appears appeared shown "
    "show shows screen video".split()
)


class OfflinePlanner:
    name = "offline"

    def start(self, question: str, video: str | None, toolbox: Toolbox, max_steps: int) -> list[AnyMessage]:
        return []  # no conversation: the policy reads the observations

    def plan(self, state: dict[str, Any], must_answer: str | None) -> dict[str, Any]:
        obs: list[Observation] = state.get("observations", [])
        done = {o.tool for o in obs}
        question = state["question"]
        if must_answer:
            return {"final": self._final(question, obs)}
        when = temporal(question)
        if "search" not in done:
            extra = when.search_args()
            calls = [_call("search", {"query": q, "top_k": 10, **extra}) for q in phrasings(question)]
            hint = channel_hint(question)
            if hint:
                calls.append(_call("search", {"query": content(question), "top_k": 10, "modality": hint, **extra}))
            return {"calls": calls}
        if "inspect" not in done:
            windows = candidates(obs, when.order)[:N_INSPECT]
            if not windows:
                return {"final": self._final(question, obs)}
            return {"calls": [_call("inspect", {"video": v, "start": a, "end": b, "question": content(question)})
                              for v, a, b in windows]}
        if "ground" not in done:
            best = _best_inspect(obs, candidates(obs, when.order), channel_hint(question), when.order)
            if best is None:
                return {"final": self._final(question, obs)}
            r = best.result
            return {"calls": [_call("ground", {"video": r["video"], "start": r["best_start"], "end": r["best_end"],
                                               "query": content(question)})]}
        return {"final": self._final(question, obs)}

    def _final(self, question: str, obs: list[Observation]) -> dict[str, Any]:
        grounded = [o for o in obs if o.tool == "ground" and o.result]
        inspected = [o for o in obs if o.tool == "inspect" and o.result]
        if grounded and grounded[-1].result["confidence"] >= MIN_CONFIDENCE:
            g = grounded[-1].result
            spans = [{"video": g["video"], "start": g["start"], "end": g["end"], "confidence": g["confidence"]}]
            for o in sorted(inspected, key=lambda o: -o.result["confidence"]):
                r = o.result
                far = all(r["video"] != s["video"] or r["best_end"] <= s["start"] or r["best_start"] >= s["end"]
                          for s in spans)
                if far and r["confidence"] >= EXTRA_SPAN_CONFIDENCE:
                    spans.append({"video": r["video"], "start": r["best_start"], "end": r["best_end"],
                                  "confidence": round(r["confidence"] * 0.8, 3)})
            what = {"speech": "said", "ocr": "shown on screen", "visual": "seen"}.get(g["source"], "found")
            quote = f': "{g["evidence"]}"' if g["evidence"] else ""
            text = end_sentence(f"At {hms(g['start'])}–{hms(g['end'])} in {g['video']} ({what}){quote}")
            steps = [grounded[-1].step] + [o.step for o in inspected]
            return {"answer": text, "spans": spans, "evidence": steps}
        nearest = top_moment(obs, ("ground", "inspect", "search"))
        if nearest is not None:
            m, _ = nearest
            hint = f" The closest candidate was {hms(m.start)}–{hms(m.end)} in {m.video}"
            hint += f' ("{m.text}")' if m.text and not m.text.startswith(("best", "inspected")) else ""
            return {"answer": "Not found: nothing in the library clearly matches the question." + hint + ", "
                    "but it does not fit well enough to report.", "spans": [],
                    "evidence": sorted({o.step for o in obs})}
        return {"answer": "Not found: the search returned nothing for this question.", "spans": [], "evidence": []}


def content(question: str) -> str:
    """The question without its framing and time words: the description of the moment."""
    text = FRAMING.sub(" ", temporal(question.replace("?", " ")).text)
    text = " ".join(text.split()).strip(" ,.;:!")
    return text or question.strip()


def keywords(question: str) -> str:
    words = [w for w in re.findall(r"[\w'-]+", content(question).lower()) if w not in STOP]
    return " ".join(dict.fromkeys(words))


def quoted(question: str) -> list[str]:
    return [q.strip() for pair in re.findall(r'"([^"]+)"|“([^”]+)”|\'([^\']{3,})\'', question)
            for q in pair if q.strip()]


def phrasings(question: str) -> list[str]:
    """Distinct search queries for a question: quoted strings, its content, its keywords."""
    out = [*quoted(question), content(question), keywords(question)]
    return [q for q in dict.fromkeys(x for x in out if x)]


def candidates(obs: list[Observation], order: str = "relevance") -> list[tuple[str, float, float]]:
    """Candidate windows from all searches, fused by moment (summed scores), best first.

    Frame hits widen to a few seconds around the frame; scene, hour, day and
    video hits are too coarse to inspect and only count when nothing finer
    was found. With an ``order`` ("earliest" / "latest") the relevant windows
    (at least ORDER_FRACTION of the best fused score) come in time order.
    """
    scores: dict[tuple[str, float, float], float] = {}
    coarse: dict[tuple[str, float, float], float] = {}
    for o in obs:
        if o.tool != "search" or not o.result:
            continue
        for h in o.result["hits"]:
            if h["level"] == "frame":
                key = (h["video"], max(0.0, h["start"] - 3.0), h["end"] + 3.0)
            else:
                key = (h["video"], h["start"], h["end"])
            bucket = scores if h["level"] in ("clip", "frame") else coarse
            bucket[key] = bucket.get(key, 0.0) + h["score"]
    ranked = sorted(scores.items(), key=lambda kv: -kv[1]) or sorted(coarse.items(), key=lambda kv: -kv[1])
    if order in ("earliest", "latest") and ranked:
        best = ranked[0][1]
        relevant = [kv for kv in ranked if kv[1] >= ORDER_FRACTION * best]
        ranked = sorted(relevant, key=(lambda kv: (kv[0][1], -kv[1])) if order == "earliest"
                        else (lambda kv: (-kv[0][2], -kv[1])))
    picked: list[tuple[str, float, float]] = []
    for (v, a, b), _ in ranked:
        if all(v != pv or b <= pa or a >= pb for pv, pa, pb in picked):  # distinct windows only
            picked.append((v, a, b))
    return picked


def channel_hint(question: str) -> str | None:
    """"speech" or "ocr" when the question says where the moment is (said / shown), else None."""
    speech, text = bool(SPEECH_HINT.search(question)), bool(TEXT_HINT.search(question))
    return "speech" if speech and not text else "ocr" if text and not speech else None


def _best_inspect(obs: list[Observation], ranked: list[tuple[str, float, float]],
                  hint: str | None = None, order: str = "relevance") -> Observation | None:
    """The inspected window to ground: its own confidence, plus a prior from its search rank (so a
    window the searches agreed on is not beaten by a vaguely similar picture), plus a bonus when its
    evidence is in the channel the question names. With an order, the earliest (latest) of the
    windows that score at least ORDER_FRACTION of the best."""
    inspected = [o for o in obs if o.tool == "inspect" and o.result]

    def bonus(o: Observation) -> float:
        return HINT_BONUS if hint and o.result["source"] == hint else 0.0

    def prior(o: Observation) -> float:
        key = (o.args.get("video"), o.args.get("start"), o.args.get("end"))
        rank = next((i for i, c in enumerate(ranked) if c == key), len(ranked))
        return 0.5 / (1 + rank) + bonus(o)

    if not inspected:
        return None
    if order in ("earliest", "latest"):
        best = max(o.result["confidence"] + bonus(o) for o in inspected)
        relevant = [o for o in inspected if o.result["confidence"] + bonus(o) >= ORDER_FRACTION * best]
        if order == "earliest":
            return min(relevant, key=lambda o: (o.result["best_start"], -o.result["confidence"]))
        return max(relevant, key=lambda o: (o.result["best_end"], o.result["confidence"]))
    return max(inspected, key=lambda o: o.result["confidence"] + prior(o))


def _call(name: str, args: dict[str, Any]) -> dict[str, Any]:
    return {"id": None, "name": name, "args": args}


__all__ = ["OfflinePlanner", "TimeHint", "channel_hint", "content", "keywords", "phrasings", "quoted", "temporal"]
