"""Time language in questions, read once: windows, order, occurrences and anchors.

``parse_time(question)`` returns a ``TimeQuery``: what the question says about
*media time* (seconds from the start of a video), as search arguments and an
anchor step, and the question without those words. Any planner can use it;
the offline planner does.

The grammar, composed from a few pieces:

- a *duration* is a number (digits, number words, "half", "a couple of", "N
  and a half") with a unit ("5 minutes", "ninety seconds", "a 10-minute",
  "1m30s", "1 minute 20 seconds");
- a *point* in a video is a clock time (``h:mm:ss``, ``m:ss``, "the 1:20
  mark"), a duration that says it is one ("5 minutes in", "two minutes into
  the video", "the 5 minute mark") or "minute 5"; after a preposition a plain
  duration is a point too ("after 90 seconds"), but not after "the" ("after the
  1990s" is a decade);
- *windows*: "after / since / from / past P" (``after``), "before / until /
  till / up to / by P" (``before``), "between P and P" / "from P to P" / "P-P"
  (``within``), "in the first D" (``within`` from 0), "at / around P" (a few
  seconds either side of P, ``at``), "in the last / past D", "since D ago"
  (``last``: the final stretch of each video);
- *order*: "the first time", "initially", "when did it begin" (earliest);
  "the last time", "most recently", "now" (latest);
- *occurrences*: an ordinal with a noun of repetition ("the second time", "for
  the 3rd time", "the second-to-last time", "the penultimate mention"): the
  N-th relevant moment in time order (from the end with "last");
- *anchors*: a relation word before a clause that describes another moment
  ("right after the alarm rings", "while they talk about rain", "before the
  title appears"): the moment is found first, and its extent makes the window.
  Order and occurrence words inside the clause choose which anchor moment.

Numbers that are not times stay content ("how many 5 dollar bills", "top 10
list", "between 5 and 10 people"), and nothing inside quotes is read as time.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel

from vdisc.tools.search import parse_duration

AT_PAD = 3.0  # seconds either side of a named point ("at 1:20"): people round a moment to a few seconds

Order = Literal["relevance", "earliest", "latest"]
Relation = Literal["after", "right_after", "before", "right_before", "during"]


class Anchor(BaseModel):
    """Another moment the question's moment is placed against: "right after <text>"."""

    relation: Relation
    text: str  # the anchor's description, without its own time words
    order: Order = "relevance"  # which anchor moment, when it happens more than once
    occurrence: int | None = None  # the N-th anchor moment in ``order`` (earliest unless "last")

    def search_args(self) -> dict[str, Any]:
        """The order for the anchor's searches (its window is the question's: ``TimeQuery.search_args``)."""
        return search_arguments(self.order, self.occurrence)


class TimeQuery(BaseModel):
    """What a question says about time, and the question without those words."""

    order: Order = "relevance"
    occurrence: int | None = None  # the N-th relevant moment in time order (from the end when order is latest)
    last: float | None = None  # seconds: only the final stretch of each video
    after: float | None = None  # seconds from the start of the video
    before: float | None = None
    within: tuple[float, float] | None = None
    at: float | None = None  # a named point; ``within`` holds the few seconds around it
    anchor: Anchor | None = None
    # a relation to the moment talked about before ("right after that", "before it", "at that moment"): in a
    # conversation, the last answer's moment is the anchor
    back: Relation | None = None
    text: str

    def bounds(self) -> tuple[float | None, float | None]:
        """The [lo, hi] seconds a moment must overlap, from ``within``, ``after`` and ``before`` (None = open)."""
        lo, hi = self.within if self.within is not None else (None, None)
        if self.after is not None:
            lo = self.after if lo is None else max(lo, self.after)
        if self.before is not None:
            hi = self.before if hi is None else min(hi, self.before)
        return lo, hi

    def search_args(self) -> dict[str, Any]:
        """Arguments for ``tools.search.search``: the window, ``last`` and the order."""
        return search_arguments(self.order, self.occurrence, self.last, *self.bounds())


def search_arguments(order: str = "relevance", occurrence: int | None = None, last: float | None = None,
                     lo: float | None = None, hi: float | None = None) -> dict[str, Any]:
    """``tools.search.search`` arguments for an order, an occurrence, ``last`` and a [lo, hi] window.

    An occurrence counts in time order, so it searches "earliest" unless the order says "latest"; a window
    with both ends is ``within``, one end alone ``after`` or ``before``.
    """
    out: dict[str, Any] = {}
    order = "earliest" if order == "relevance" and occurrence is not None else order
    if order != "relevance":
        out["order"] = order
    if last is not None:
        out["last"] = last
    if lo is not None and hi is not None:
        out["within"] = (lo, hi)
    elif lo is not None:
        out["after"] = lo
    elif hi is not None:
        out["before"] = hi
    return out


# ---- pieces of the grammar --------------------------------------------------------------
_SMALL = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
          "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
         "ninety": 90}
_FUZZY = {"a": 1, "an": 1, "few": 3, "a few": 3, "couple of": 2, "a couple of": 2, "half a": 0.5,
          "half an": 0.5, "half": 0.5}
_WORD_NUM = (r"(?:(?:" + "|".join(_TENS) + r")(?:[\s-](?:" + "|".join(_SMALL[1:10]) + r"))?|"
             + "|".join(sorted(_SMALL, key=len, reverse=True)) + r"|"
             + "|".join(sorted((re.escape(w).replace(r"\ ", r"\s+") for w in _FUZZY), key=len, reverse=True))
             + r")")
_NUM = r"(?:\d+(?:\.\d+)?|" + _WORD_NUM + r")(?:\s+and\s+a\s+half)?"
_SUNIT = r"(?:seconds?|secs?|minutes?|mins?|hours?|hrs?)"  # spelled units: a number with one is a duration
_COMPACT = r"(?:\d+(?:\.\d+)?[hms]){1,3}"  # 90s, 2m, 1h30m, as --last reads them
_DUR1 = r"(?:" + _COMPACT + r"(?![\w:])|\b" + _NUM + r"[\s-]*" + _SUNIT + r"\b(?!\s+time))"
_DUR = _DUR1 + r"(?:(?:\s*,\s*|\s+and\s+|\s+)" + _DUR1 + r")*"
_CLOCK = r"(?<![\d:.])\d{1,2}(?::\d{2}){1,2}(?:\.\d+)?(?![\d:])"
_NTH = r"(?:minute|second|hour)\s+\d+(?:\.\d+)?\b"  # "minute 5"
_MEDIA = r"(?:video|clip|film|movie|recording|stream|show)"
# "5 minutes in", "two minutes into the video" ("5 minutes in the kitchen" is a place, not a point)
_IN = r"\s+in(?:to)?(?:\s+(?:the|this)\s+" + _MEDIA + r")?\b(?!\s+(?:the|a|an|his|her|their|its|my|our|your)\b)"
# points that say they are points: "the 1:20 mark", "1:20 in", "5 minutes in", "the 5 minute mark"
_MARKED = (r"(?:(?:the\s+)?" + _CLOCK + r"\s+marks?\b|" + _CLOCK + _IN + r"|" + _DUR + _IN + r"|(?:the\s+)?"
           + _DUR + r"\s+marks?\b)")
# after a preposition a clock time, "minute 5" and a plain duration are points too
_POINT = r"(?:" + _MARKED + r"|(?:the\s+)?" + _CLOCK + r"|(?:the\s+)?" + _NTH + r"|" + _DUR + r")"

_NEAR = r"(?:right|just|immediately|directly|shortly|soon)"  # "right after 1:20" is after 1:20
_AFTER_WORDS = r"(?:after|since|from|past|beyond|later\s+than)"
_BEFORE_WORDS = r"(?:before|until|till|til|up\s+to|prior\s+to|earlier\s+than)"
_RANGE_END = r"(?:" + _CLOCK + r"|" + _DUR + r"|" + _NTH + r")(?:\s+marks?\b)?"
_RANGE_START = r"(?:" + _RANGE_END + r"|\d+(?:\.\d+)?\b|" + _WORD_NUM + r"\b)"  # "between 1 and 2 minutes"

_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_LUNIT = r"(?P<u>seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h|days?|d)"
_LNUM = r"(?P<n>" + _NUM + r")"

# (pattern, kind): read in this order, each match cut out of the question before the next pattern runs
_RULES: list[tuple[re.Pattern[str], str]] = [
    # "in the last 1h30m", "since 2h30m ago": compact spans, read like --last
    (re.compile(r"\b(?:(?:in|during|within|over|for|from)\s+)?(?:the\s+)?(?:(?:last|past|previous|final)\s+"
                r"(?P<c>(?:\d+(?:\.\d+)?[dhms]){2,})|(?:since|from|after)\s+(?P<a>(?:\d+(?:\.\d+)?[dhms]){2,})"
                r"\s+ago)\b", re.I), "compact"),
    # "since 10 minutes ago"
    (re.compile(r"\b(?:since|from|after)\s+" + _LNUM + r"\s*" + _LUNIT + r"\s+ago\b", re.I), "last"),
    # "in the last 10 minutes", "over the past hour", "during the previous half hour", "in the final minute"
    (re.compile(r"\b(?:(?:in|during|within|over|for|from)\s+)?(?:the\s+)?(?:last|past|previous|final)\s+"
                r"(?:" + _LNUM + r"\s*)?" + _LUNIT + r"\b", re.I), "last"),
    # "between 1:00 and 2:00", "from 0:30 to 1:10", "between 1 and 2 minutes", "in 1:00-2:00"
    (re.compile(r"\b(?:between|from)\s+(?:the\s+)?(?P<a>" + _RANGE_START + r")\s*"
                r"(?:and|to|till|until|through|-|–|—)\s*(?:the\s+)?(?P<b>" + _RANGE_END + r")", re.I), "range"),
    (re.compile(r"\b" + _AFTER_WORDS + r"\s+(?P<a>" + _POINT + r")\s+(?:and\s+|but\s+)?" + _BEFORE_WORDS
                + r"\s+(?P<b>" + _POINT + r")", re.I), "range"),  # "after 1:00 and before 2:00"
    (re.compile(r"(?:\b(?:in|during|within|over|at)\s+(?:the\s+)?)?(?P<a>" + _CLOCK + r")\s*(?:-|–|—)\s*(?P<b>"
                + _CLOCK + r")", re.I), "range"),
    # "in the first 20 seconds", "during the opening minute", "the first half hour"
    (re.compile(r"\b(?:(?:in|during|within|over|for)\s+)?(?:the\s+)?(?:first|opening|initial)\s+(?P<d>" + _DUR
                + r"|" + _SUNIT + r")", re.I), "first"),
    # "at 1:20", "around the 5 minute mark", "at 90 seconds"
    (re.compile(r"\b(?:at|around|near)\s+(?P<p>" + _POINT + r")", re.I), "at"),
    # "after 1:20", "since 5 minutes in", "from minute 5"
    (re.compile(r"\b(?:" + _NEAR + r"\s+)?" + _AFTER_WORDS + r"\s+(?P<p>" + _POINT + r")(?:\s+on(?:wards?)?\b)?",
                re.I), "after"),
    # "before the 5 minute mark", "until 2:00", "by 1:30"
    (re.compile(r"\b(?:(?:" + _NEAR + r"\s+)?" + _BEFORE_WORDS + r"\s+(?P<p>" + _POINT + r")|by\s+(?P<q>" + _MARKED
                + r"|" + _CLOCK + r"))", re.I), "before"),
    # "what is shown 5 minutes in", "at the 2 minute mark" without a preposition left
    (re.compile(r"(?P<p>" + _MARKED + r")", re.I), "at"),
]

# ordinals with a noun of repetition: "the second time", "for the 3rd time", "the second-to-last mention"
_ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8,
             "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12}
_REPEAT_NOUN = r"(?:times?|occurrences?|appearances?|mentions?|instances?)"
_ORDINAL = re.compile(
    r"\b(?:for\s+)?(?:the|a)\s+(?:(?P<ord>" + "|".join(_ORDINALS) + r"|\d+(?:st|nd|rd|th))"
    r"(?P<rev>[\s-]+(?:to[\s-]+)?last|[\s-]+from[\s-]+(?:the\s+)?(?:last|end))?"
    r"|(?P<pen>penultimate|next[\s-]+to[\s-]+last))\s+" + _REPEAT_NOUN + r"\b(?P<end>\s+from\s+the\s+end\b)?", re.I)
_EARLIEST = re.compile(r"\b(?:for\s+the\s+(?:very\s+)?first\s+time|the\s+(?:very\s+)?first\s+time|first\s+time|"
                       r"(?:the\s+)?(?:very\s+)?first|earliest|initially|at\s+first|originally|"
                       r"to\s+begin\s+with|at\s+the\s+(?:start|beginning))\b", re.I)
_ATTRIBUTIVE = re.compile(r"(?:the\s+)?(?:very\s+)?(?:first|last)", re.I)
_BEGIN = re.compile(r"\b(?:begin|begins|began|beginning|start|starts|started|starting)\b", re.I)
_WHEN = re.compile(r"\b(?:when|what\s+time|at\s+what\s+(?:point|time|moment)|which\s+(?:moment|point))\b", re.I)
_LATEST = re.compile(r"\b(?:(?:the\s+)?most\s+recent(?:ly)?|(?:the\s+)?latest|lately|recently|"
                     r"(?:for\s+)?the\s+last\s+time|last\s+time|currently|(?:right|just)\s+now|at\s+present|"
                     r"presently|now|(?:the\s+)?last)\b", re.I)

# a relation word before a clause: "right after the alarm rings", "while they talk about rain"
_RELATION = re.compile(
    r"\b(?:(?P<near>right|just|immediately|directly|shortly|soon|moments?)\s+(?P<nrel>after|before)|"
    r"(?P<soon>as\s+soon\s+as)|(?P<rel>after|before|until|till|since|while|whilst|during|prior\s+to))"
    r"\s+(?P<clause>[^,;.?!]+)", re.I)
_RELATIONS: dict[str, Relation] = {"after": "after", "since": "after", "before": "before", "until": "before",
                                   "till": "before", "prior to": "before", "while": "during", "whilst": "during",
                                   "during": "during"}
# "the day after", "a week before": a time noun before the relation word makes it part of the content
_PERIOD_BEFORE = re.compile(r"\b(?:seconds?|minutes?|hours?|days?|weeks?|months?|years?|night|morning|evening|"
                            r"afternoon)\s*$", re.I)
# clauses that do not describe a moment: "after that", "before long", "during the video"
_NOT_A_MOMENT = frozenset("that this it all long then now ever which them him her us me you so the a an one "
                          "video clip film movie recording stream show".split())
_QUESTION_WORD = re.compile(r"\b(?:what|which|who|whom|whose|where|when|how)\b", re.I)
_QUOTED = re.compile(r'"[^"]*"|“[^”]*”|(?<!\w)\'[^\']+\'(?!\w)')
_MASK = "\ue000"  # stands in for quoted characters: never a word, never a time


class _Text:
    """The question and a copy with quotes masked, cut in step (patterns read the mask, cuts apply to both)."""

    def __init__(self, text: str) -> None:
        self.orig = text
        self.mask = _QUOTED.sub(lambda m: _MASK * len(m.group()), text)

    def cut(self, start: int, end: int) -> None:
        self.orig = self.orig[:start] + " " + self.orig[end:]
        self.mask = self.mask[:start] + " " + self.mask[end:]

    def sub(self, pattern: re.Pattern[str]) -> None:
        for m in reversed(list(pattern.finditer(self.mask))):
            self.cut(m.start(), m.end())


def _number(text: str) -> float:
    """A number in digits or words: "5", "2.5", "ninety", "twenty-five", "a couple of", "two and a half"."""
    text = " ".join(text.lower().replace("-", " ").split())
    half = text.endswith(" and a half")
    text = text[: -len(" and a half")] if half else text
    if text[:1].isdigit():
        value = float(text)
    elif text in _FUZZY:
        value = float(_FUZZY[text])
    else:
        value = 0.0
        for word in text.split():
            value += _TENS.get(word, 0) or (_SMALL.index(word) if word in _SMALL else 0)
    return value + (0.5 if half else 0.0)


def _duration(text: str) -> float:
    """Seconds of a duration: "5 minutes", "1m30s", "1 minute and 20 seconds", "half an hour"."""
    seconds = 0.0
    for m in re.finditer(_DUR1, text, re.I):
        part = m.group().strip()
        if re.fullmatch(_COMPACT, part, re.I):
            seconds += parse_duration(part)
            continue
        unit = re.search(_SUNIT + r"$", part, re.I)
        number = part[: unit.start()].rstrip(" -\t") if unit else part
        seconds += _number(number) * _UNIT_SECONDS[unit.group()[0].lower()] if unit else 0.0
    return seconds


def _clock(text: str) -> float:
    seconds = 0.0
    for part in text.split(":"):
        seconds = seconds * 60 + float(part)
    return seconds


def _point(text: str) -> float:
    """Seconds from the start of a video for a point: a clock time, "minute 5", or a duration."""
    clock = re.search(_CLOCK, text)
    if clock:
        return _clock(clock.group())
    nth = re.fullmatch(r"(?:the\s+)?(minute|second|hour)\s+(\d+(?:\.\d+)?)(?:\s+marks?)?", text.strip(), re.I)
    if nth:
        return float(nth.group(2)) * _UNIT_SECONDS[nth.group(1)[0].lower()]
    return _duration(text)


def _amount(m: re.Match[str]) -> float:
    n = m.groupdict().get("n") or "1"
    return _number(n) * _UNIT_SECONDS[m.group("u")[0].lower()]


def _range(a: str, b: str) -> tuple[float, float]:
    """Seconds of "between A and B": a bare number at A takes B's unit ("between 1 and 2 minutes")."""
    hi = _point(b)
    if re.fullmatch(r"\d+(?:\.\d+)?|" + _WORD_NUM, a.strip(), re.I):
        unit = re.search(_SUNIT, b, re.I)
        lo = _number(a) * (_UNIT_SECONDS[unit.group()[0].lower()] if unit else 1.0)
    else:
        lo = _point(a)
    return (lo, hi) if lo <= hi else (hi, lo)


def _windows(t: _Text, q: TimeQuery) -> None:
    """Absolute windows: each rule's matches are read into ``q`` and cut out of the text."""
    for pattern, kind in _RULES:
        while (m := pattern.search(t.mask)) is not None:
            if kind in ("last", "compact"):
                seconds = parse_duration(m.group("c") or m.group("a")) if kind == "compact" else _amount(m)
                q.last = seconds if q.last is None else min(q.last, seconds)
            elif kind == "range" and q.within is None:
                q.within = _range(m.group("a"), m.group("b"))
            elif kind == "first" and q.within is None:
                d = m.group("d")
                q.within = (0.0, _duration(d) if re.search(r"\d|\s", d.strip()) else _duration("1 " + d))
            elif kind == "at" and q.within is None and q.at is None:
                q.at = _point(m.group("p"))
                q.within = (max(0.0, q.at - AT_PAD), q.at + AT_PAD)
            elif kind == "after" and q.after is None:
                q.after = _point(m.group("p"))
            elif kind == "before" and q.before is None:
                seconds = _point(m.group("p") or m.group("q"))
                if q.after is None or seconds > q.after:  # "after 2:00 and before 1:00" keeps the first read
                    q.before = seconds
            t.cut(m.start(), m.end())


def _order(t: _Text) -> tuple[Order, int | None]:
    """Order and occurrence words of a text (cut out of it): ordinals first, then first/last words.

    Windows are read before these words, so "in the last 10 minutes" is a
    window while "the last time" or "shown last" asks for the latest moment.
    """
    m = _ORDINAL.search(t.mask)
    if m is not None:
        t.cut(m.start(), m.end())
        if m.group("pen"):
            return "latest", 2
        word = m.group("ord").lower()
        n = _ORDINALS[word] if word in _ORDINALS else int(re.match(r"\d+", word).group())
        order: Order = "latest" if m.group("rev") or m.group("end") else "earliest"
        return order, (n if n > 1 else None)
    early, late = _EARLIEST.search(t.mask), _LATEST.search(t.mask)
    begin = _BEGIN.search(t.mask) if _WHEN.search(t.mask) else None
    early = min((x for x in (early, begin) if x is not None), key=lambda x: x.start(), default=None)
    if early is not None and (late is None or early.start() <= late.start()):
        _cut_order(t, _EARLIEST)
        if begin is not None:
            t.sub(_BEGIN)
        return "earliest", None
    if late is not None:
        _cut_order(t, _LATEST)
        return "latest", None
    return "relevance", None


def _cut_order(t: _Text, pattern: re.Pattern[str]) -> None:
    """Cut the order words out, except a bare "first" / "last" before another word: it also names the thing
    ("the first aid sign", "her last name", "the first goal"), and the description keeps it."""
    for m in reversed(list(pattern.finditer(t.mask))):
        if _ATTRIBUTIVE.fullmatch(m.group()) and re.match(r"\s+[^\W\d_]", t.mask[m.end():]):
            continue
        t.cut(m.start(), m.end())


def _anchor(t: _Text) -> tuple[Relation, _Text] | None:
    """The first relation word followed by a clause that describes a moment; the clause is cut out."""
    for m in _RELATION.finditer(t.mask):
        if _PERIOD_BEFORE.search(t.mask[: m.start()]):
            continue
        words = re.findall(r"[^\W\d_]+", m.group("clause").lower())
        if not any(len(w) > 1 and w not in _NOT_A_MOMENT for w in words):
            continue
        if m.group("nrel"):
            relation: Relation = "right_after" if m.group("nrel").lower() == "after" else "right_before"
        elif m.group("soon"):
            relation = "right_after"
        else:
            relation = _RELATIONS[" ".join(m.group("rel").lower().split())]
        end = m.end("clause")
        if not re.search(r"\w", t.mask[: m.start()]):  # a fronted clause ends where the question begins
            wh = _QUESTION_WORD.search(t.mask, m.start("clause"), end)
            end = wh.start() if wh is not None and wh.start() > m.start("clause") else end
        clause = _Text(t.orig[m.start("clause"): end])
        t.cut(m.start(), end)
        return relation, clause
    return None


# a relation word with no moment of its own after it: "and right after?", "before that", "at that moment"
_BACK = re.compile(
    r"\b(?:(?P<near>right|just|immediately|directly|shortly|soon)\s+)?(?P<rel>after|before|while|during)"
    r"(?:\s+(?:that|this|it|then|them|those))?(?=\s*[?.!]*\s*$)|"
    r"\b(?P<same>at\s+(?:that|this|the\s+same)\s+(?:moment|point|time)|meanwhile)\b", re.I)


def _back(t: _Text) -> Relation | None:
    """The relation of a question to the moment talked about before, cut out; None when it names none."""
    m = _BACK.search(t.mask)
    if m is None:
        return None
    if m.group("same"):
        relation: Relation = "during"
    elif m.group("near"):
        relation = "right_after" if m.group("rel").lower() == "after" else "right_before" \
            if m.group("rel").lower() == "before" else "during"
    else:
        relation = _RELATIONS[m.group("rel").lower()]
    t.cut(m.start(), m.end())
    return relation


def _tidy(text: str, fallback: str) -> str:
    return " ".join(text.split()).strip(" ,.;:!?") or fallback.strip()


def parse_time(question: str) -> TimeQuery:
    """The time language of a question as a ``TimeQuery``; ``text`` is the question without it."""
    t = _Text(question)
    q = TimeQuery(text=question)
    _windows(t, q)
    found = _anchor(t)
    if found is not None:
        relation, clause = found
        order, occurrence = _order(clause)
        q.anchor = Anchor(relation=relation, text=_tidy(clause.orig, clause.orig), order=order,
                          occurrence=occurrence)
    else:
        q.back = _back(t)
    q.order, q.occurrence = _order(t)
    q.text = _tidy(t.orig, question)
    return q


__all__ = ["AT_PAD", "Anchor", "TimeQuery", "parse_time", "search_arguments"]
