"""The reader: the short answer a person would give, from the question and the evidence gathered.

Pure functions over the question's words and the evidence texts (what the tools said was said or
shown, with times); the one learned part, text similarity, comes in as a ``Scorer`` (the text model
the tools use, through the planner's toolbox). Each function's docstring says its mechanism; none
holds word lists or thresholds fitted to a data set: the lexicon below is English grammar (number
words, question words), the bars are the search's own (``TEXT_FLOOR``, ``ORDER_FRACTION``).

The question types, in the order ``kind`` tests them:

- ``choice``  options given ("A) ... B) ..." or "...: X, Y or Z?"): the option the evidence supports;
- ``order``   "which comes first, A or B?", "does A happen before B?": the earlier side;
- ``count``   "how many times", "how often": distinct relevant moments across the whole timeline;
- ``topic``   "what is this video about": the video summary's most central sentence;
- ``when``    the grounded span as h:mm:ss–h:mm:ss;
- ``quantity`` "how many spoons", "what percentage", "how long", "what time": a number expression;
- ``text``    "what does the sign say", "what is written", "what is said": the line shown (or said);
- ``name``    "which gate", "what food", "who": the new words of the evidence nearest the question's;
- ``other``   the quote itself.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Sequence

from vdisc.numwords import SCALES, TENS, UNITS, answer_key
from vdisc.timefmt import hms
from vdisc.tools.search import COARSE, ORDER_FRACTION, TEXT_FLOOR

from .timewords import parse_time

Scorer = Callable[[str, list[str]], Sequence[float]]  # similarity of each text to a query
NOT_FOUND = "not found"

# English grammar, not a data set: the words that are numbers (``numwords``), the words that ask.
NUMBER_WORD = r"(?:" + "|".join(UNITS + TENS + list(SCALES) + ["a dozen", "dozen", "half", "a half"]) + r")"
NUMBER = re.compile(
    r"(?P<cur>[$€£¥])?\s?(?P<num>\d{1,2}(?::\d{2})?\s?[ap]m|\d{1,2}:\d{2}|\d+(?:[.,]\d+)*|"
    rf"{NUMBER_WORD}(?:[\s-]+(?:and\s+)?{NUMBER_WORD})*)\b(?P<pct>\s?(?:%|percent\b|per cent\b))?",
    re.IGNORECASE)
STOP = frozenset(
    "a an and are as at be been but by can could did do does for from had has have he her his how i if in into is "
    "it its me my of on or our she so than that the their them then there these they this those to was we were "
    "what when where which who whom whose why will with would you your not no yes because although though while "
    "since until unless whereas also just very really only even please".split())

COUNT = re.compile(r"\bhow (many (\w+ ){0,2}times|often)\b|\bhow many (\w+ )?(occasions|moments)\b",
                   re.IGNORECASE)
_WHOLE = r"(this|the) (whole |entire |full |long |short )?(video|clip|film|movie|recording|talk|programme|program|show)"
# The nouns of measure: a question whose wh-phrase is headed by one ("what wind speed", "what is the number
# of the bay") asks for a number, whatever words modify the noun.
MEASURE_NOUN = (r"(percentage|percent|share|number|price|amount|time|year|date|temperature|score|speed|size|cost|"
                r"rate|distance|duration|age|weight|height|length|total|count|figure)")
# about the whole video: what it is about, its topic or summary, or what it mostly is, shows or holds; a
# property of the video itself ("what is the subject of this clip?"); what it covers, deals with, shows
TOPIC = re.compile(rf"\b(what('s| is| are)? {_WHOLE}( \w+)? about|what is (it|this) about|(main )?topic of|"
                   rf"summar(y|ise|ize)|what (is|does|do) {_WHOLE} (mostly|mainly|largely|chiefly|generally|"
                   r"primarily|overall)\b)"
                   rf"|^\s*what('s| is| was) (the|its) (\w+ )?(?!{MEASURE_NOUN}s?\b)\w+ of {_WHOLE}\s*\??\s*$"
                   rf"|^\s*what (does|do|did) {_WHOLE} (\w+ )?(cover|concern|deal with|focus on|discuss|describe|"
                   rf"explain|present|show)\s*\??\s*$|^\s*what is {_WHOLE} (\w+ )?(concerned with|focused on|"
                   r"devoted to)\s*\??\s*$", re.IGNORECASE)
WHEN = re.compile(r"^\s*(when\b|at what (point|moment)|at which (point|moment)|how far into)", re.IGNORECASE)
QUANTITY = re.compile(r"\bhow (many|much|long|far|old|big|tall|high|fast|heavy)\b|\b(what|which)('s)?\s+((is|was|are|were)"
                      rf"\s+)?(the\s+)?([a-z]+\s+){{0,2}}?{MEASURE_NOUN}s?\b",
                      re.IGNORECASE)
MEASURE = re.compile(r"\bhow (long|far|old|big|tall|high|fast|heavy|much)\b", re.IGNORECASE)
AUX = frozenset("does do did is are was were will can could should would has have had".split())
TEXT = re.compile(r"\bwhat (does|do|did) (the |that |this )?(\w+ ){0,2}(say|read)\b|\bwhat('s| is| was)? "
                  r"(written|displayed|printed|shown|said|spoken|on (the )?(screen|sign))\b|"
                  r"\bwhat (text|words?|title|caption|label)\b", re.IGNORECASE)
PERSON = re.compile(r"\b(who|whom|whose|names?|surname|called)\b", re.IGNORECASE)
LAST_NAME = re.compile(r"\b(surname|family name|last name)\b", re.IGNORECASE)
FIRST_NAME = re.compile(r"\b(first|given|christian) name\b", re.IGNORECASE)
NAME = re.compile(r"^\s*(which|what|who|whom|whose|where)\b", re.IGNORECASE)
# "which comes first / earlier", "which do we hear about later", "which is heard before (or ahead of, after)
# the other: A or B?"; the comparison word says whether the earlier or the later side is asked for
ORDER = re.compile(r"\b(which|what) (\w+ ){0,6}?(?P<cmp>first|earlier|sooner|later|last|(before|ahead of|earlier "
                   r"than|after|later than) the other)\b|\b(?P<bare>first|earlier|later)\s*[,:—–]", re.IGNORECASE)
LATER = re.compile(r"^(later|last|after|later than)\b", re.IGNORECASE)
BEFORE = re.compile(r"^\s*(does|do|did|is|was|are|were)\s+(?P<a>.+?)\s+(happen |come |appear |occur )?"
                    r"(?P<rel>before|earlier than|after|later than)\s+(?P<b>.+?)\s*\??\s*$", re.IGNORECASE)
LETTERED = re.compile(r"(?:^|\s|\()([A-Ea-e])[).:]\s+(.+?)(?=\s+\(?[A-Ea-e][).:]\s|\s*$)")


def kind(question: str) -> str:
    """The question's type, by its question words (see the module docstring for the order)."""
    if order_sides(question) is not None:
        return "order"
    if options(question)[1]:
        return "choice"
    if COUNT.search(question):
        return "count"
    if TOPIC.search(question):
        return "topic"
    if WHEN.search(question):
        return "when"
    if QUANTITY.search(question):
        return "quantity"
    if TEXT.search(question):
        return "text"
    if NAME.search(question):
        return "name"
    return "other"


# ---- the question's parts ----------------------------------------------------------------------
def options(question: str) -> tuple[str, list[str]]:
    """(stem, options). Options are lettered ("A) salt B) pepper", "(a) ... (b) ...") or a list closing the
    question after a colon or dash ("...: salt, pepper or sugar?"); anything else has none."""
    q = question.strip()
    first = re.search(r"(?:^|\s|\()[Aa][).:]\s", q)
    if first and re.search(r"(?:\s|\()[Bb][).:]\s", q[first.end():]):
        tail = q[first.start():].strip().rstrip("?")
        opts = [o.strip(" ,;?") for _, o in LETTERED.findall(tail)]
        if len(opts) >= 2:
            return q[: first.start()].strip(" :-—,"), opts
    m = re.match(r"^(?P<stem>.+?)\s*(?::|—|–| - )\s*(?P<list>[^:—–]+?\bor\b[^:—–]+?)\??\s*$", q)
    if m:
        opts = [o.strip(" ,?") for o in re.split(r",\s*(?:or\s+)?|\s+or\s+", m["list"]) if o.strip(" ,?")]
        if len(opts) >= 2:
            return m["stem"].strip(), opts
    return q, []


def order_sides(question: str) -> tuple[str, str, str] | None:
    """(form, A, B) for a question about the order of two events, else None. Forms: "which" (the earlier
    side is the answer), "later" (the later side: "which comes later / last"), "before" and "after" (yes or
    no: "does A happen before B?", "did A come after B?").

    The two sides are looked for after the comparison ("which comes first, A or B?"), before it ("A or B:
    which comes first?", "of A and B, which is heard earlier?"), and, failing both, in the question's
    lettered options ("which happens earlier? (A) ... (B) ..."), so the sides need no fixed place."""
    m = BEFORE.match(question)
    if m and not _is_time(f'{m["rel"]} {m["b"]}'):  # "was it said before 2:00?" asks about a window
        form = "after" if LATER.match(m["rel"]) else "before"
        return form, m["a"].strip(" ,"), m["b"].strip(" ,?")
    m = ORDER.search(question)
    if not m:
        return None
    form = "later" if LATER.match(m["cmp"] or m["bare"] or "") else "which"
    for sides in (_two_sides(question[m.end():], "or"),
                  _two_sides(re.sub(r"^\s*(of|between|out of|from)\s+", "", question[: m.start()], flags=re.I),
                             "or|and")):
        if sides:
            return form, *sides
    opts = options(question)[1]
    return (form, opts[0], opts[1]) if len(opts) == 2 else None


def _is_time(text: str) -> bool:
    """Whether a phrase ("before 2:00", "after the ten minute mark") is only a point in media time."""
    when = parse_time(f"it is said {text}")  # a clause for the phrase to attach to
    return when.bounds() != (None, None) and when.anchor is None


def _two_sides(text: str, joins: str) -> tuple[str, str] | None:
    """The two sides of "A or B" (or "A and B"), with the punctuation around them off; None otherwise."""
    text = text.strip(" ,:?—–-")
    if re.search(r"(?:^|\s|\()[A-Ea-e][).:]\s", text):  # lettered options are read by ``options``
        return None
    parts = re.split(rf"\s+(?:{joins})\s+", text)
    if len(parts) != 2:
        return None
    a, b = (p.strip(" ,:?—–-") for p in parts)
    return (a, b) if a and b else None


def count_text(question: str) -> str:
    """The question without its counting words ("how many times", "how often"): what is counted."""
    return " ".join(COUNT.sub(" ", question).split())


def _stem(word: str) -> str:
    """A word's first five letters after its inflection (-s, -es, -ed, -ing) and a silent final e: "adds"
    meets "add", "leaves" meets "leave"."""
    w = word.lower().removesuffix("'s")
    for end in ("ing", "ed", "es", "s"):
        if w.endswith(end) and len(w) - len(end) >= 3:
            w = w[: -len(end)]
            break
    return (w[:-1] if len(w) > 3 and w.endswith("e") else w)[:5]


def _tokens(text: str) -> list[tuple[str, int, int]]:
    return [(m.group(), m.start(), m.end()) for m in re.finditer(r"[\w'%$€£-]+", text)]


def _content_stems(question: str) -> set[str]:
    return {_stem(w) for w, _, _ in _tokens(question) if w.lower() not in STOP}


# ---- the readers ---------------------------------------------------------------------------------
def read_when(start: float, end: float) -> str:
    """The grounded span, as a person reads times: h:mm:ss–h:mm:ss."""
    return f"{hms(start)}–{hms(end)}"


def tidy_numbers(text: str) -> str:
    """Digits as a transcriber writes them, put back together: "18 ,000" -> "18,000", and a whole hundred
    followed by "and" and a smaller number, as "four hundred and twenty" comes out ("400 and 20"), -> 420.
    "7 .15" -> "7.15" likewise."""
    text = re.sub(r"(\d)\s+([,.])(\d)", r"\1\2\3", text)  # "18 ,000", "7 .15"
    return re.sub(r"\b(\d*[1-9]00) and (\d{1,2})\b", lambda m: str(int(m[1]) + int(m[2])), text)


def numbers(text: str) -> list[dict[str, Any]]:
    """The number expressions in a text (digits, number words, clock times) with what they carry: a
    currency sign, a percent, the unit word after them."""
    out = []
    for m in NUMBER.finditer(text):
        num = m["num"].strip()
        if not num or (num.lower() in ("a", "half") and not m["pct"]):
            continue
        after = re.match(r"\s+(?:of\s+)?([A-Za-z][\w-]*)", text[m.end():])
        unit = after.group(1) if after and after.group(1).lower() not in STOP and not m["pct"] else ""
        out.append({"text": num, "cur": m["cur"] or "", "pct": "%" if m["pct"] else "", "unit": unit,
                    "start": m.start(), "end": m.end(), "clock": _is_clock(text, m.start("num"), m.end("num"))})
    return out


CLOCK = re.compile(r"\d{1,2}(?::\d{2}|\.\d{2})?(?:\s?[ap]m)?", re.IGNORECASE)
AT_TIME = re.compile(r"\b(at|by|until|till|from|before|after|around|about)\s*$", re.IGNORECASE)
ASKS_TIME = re.compile(r"\b(what|which) time\b|\bwhat hour\b|\bhow (late|early)\b", re.IGNORECASE)


def _is_clock(text: str, start: int, end: int) -> bool:
    """Whether a number is a time of day: "7:15", "8am", "8 a.m.", "5 o'clock", or "7.15" after "at", "by"
    (hours and minutes that can be a clock's; a bare "7" could be anything)."""
    num = text[start:end]
    if not CLOCK.fullmatch(num):
        return False
    after = text[end:end + 10].lower()
    if ":" in num or num.lower().endswith(("am", "pm")) or re.match(r"\s*(o'?\s?clock|[ap]\.m\.)", after):
        return True
    if "." not in num:
        return False
    hour, minute = (int(x) for x in num.split("."))
    return hour <= 24 and minute < 60 and AT_TIME.search(text[max(0, start - 8):start]) is not None


def read_quantity(question: str, evidence: str) -> str | None:
    """The number expression of the evidence nearest (in characters) to a content word of the question, of
    the kind asked (a time of day for "what time", else any other number first), as it appears, with its
    currency or percent; a question of measure ("how long", "how far", "how much") gets the unit word after
    it too, unless the question names it ("how many spoons" -> "two", "how long" -> "25 minutes")."""
    evidence = tidy_numbers(evidence)
    found = numbers(evidence)
    if not found:
        return None
    want = _content_stems(question)
    anchors = [(a + b) / 2 for w, a, b in _tokens(evidence) if _stem(w) in want and not NUMBER.fullmatch(w)]

    def distance(n: dict[str, Any]) -> float:
        mid = (n["start"] + n["end"]) / 2
        return min((abs(mid - a) for a in anchors), default=n["start"])

    # a time of day answers "what time", and not "which door number" beside it ("at 7.15 from gate 12")
    kind = [n for n in found if n["clock"] == (ASKS_TIME.search(question) is not None)]
    best = min(kind or found, key=distance)
    measure = MEASURE.search(question) is not None and not best["cur"] and not best["pct"]
    unit = best["unit"] if measure and best["unit"] and not _names(question, best["unit"]) else ""
    return f"{best['cur']}{best['text']}{best['pct']}" + (f" {unit}" if unit else "")


def _names(question: str, unit: str) -> bool:
    """Whether the question names the unit already: the same word, or one abbreviating the other ("in
    minutes" names a sign's "MIN", "in km" the spoken "kilometres")."""
    words = [w for w, _, _ in _tokens(question) if w.lower() not in STOP]
    return _stem(unit) in {_stem(w) for w in words} or any(_abbreviates(unit, w) or _abbreviates(w, unit)
                                                           for w in words)


def _abbreviates(short: str, word: str) -> bool:
    """Whether ``short`` (two letters or more, shorter than ``word``) could abbreviate ``word``: its letters
    in order, from the same first letter ("min" minutes, "km" kilometres, "hrs" hours)."""
    s, w = short.lower(), word.lower()
    if not 2 <= len(s) < len(w) or not s.isalpha() or s[0] != w[0]:
        return False
    rest = iter(w)
    return all(c in rest for c in s)


def read_text(lines: Sequence[str]) -> str | None:
    """The on-screen line of the evidence: the grounded OCR line (the first given), whitespace tidied."""
    for line in lines:
        if line.strip():
            return " ".join(line.split())
    return None


def asks_for_words(question: str) -> bool:
    """Whether a "what / which" question asks for a name or words (who, whose, a name, what it is called or
    says) rather than for something a number could answer (a price, a door, a year)."""
    return re.search(r"\b(who|whom|whose|names?|called|phrase|words?|says?|said)\b", question, re.IGNORECASE) is not None


def read_name(question: str, evidence: str, scorer: Scorer | None = None) -> str | None:
    """The words of the evidence the question does not contain: of the runs of such content words (no
    function words, no question words), the one nearest to a question word found in the evidence, the
    shorter on a tie. When the question asks "which X" and X stands right before that run in the
    evidence, X comes with it ("which gate" -> "gate 7"). Distance counts the content words between; on a
    tie, English word order decides: a question whose verb follows an auxiliary ("what does she bring")
    asks for an object, which follows the verb, else ("who caught the ball") for a subject, before it.
    When the question shares no word with the evidence (a paraphrase) and a ``scorer`` is given, the run
    least like the question is the answer: the others restate what it asks about. A question that asks
    for a name ("who", "name", "surname", "called") takes the capitalised stretches of the runs, when
    there are any (a name is written so; which capitalised word is a person's is not known: a weekday
    near the question's words can win), and a surname or first name is the last or first word of it."""
    toks = _tokens(evidence)
    qwords = [w for w, _, _ in _tokens(question)]
    qstems = {_stem(w) for w in qwords}
    novel = [w.lower() not in STOP and _stem(w) not in qstems for w, _, _ in toks]
    runs: list[tuple[int, int]] = []
    i = 0
    while i < len(toks):
        if novel[i]:
            j = i
            while j + 1 < len(toks) and novel[j + 1]:
                j += 1
            runs.append((i, j))
            i = j + 1
        else:
            i += 1
    if not runs:
        return None
    if PERSON.search(question):  # a name is asked for: a person's or a thing's name is written capitalised
        proper = [r for run in runs for r in _proper_runs(evidence, toks, run)]
        runs = proper or runs
    want = _content_stems(question)
    anchors = [k for k, (w, _, _) in enumerate(toks) if _stem(w) in want]
    restating = _restating(qwords, toks, anchors, runs)
    runs = [r for r in runs if r not in restating] or runs
    words = [w.lower() for w in qwords]
    wh = next((i for i, w in enumerate(words) if w in ("which", "what", "who", "whom", "whose", "where")), 0)
    after = wh + 1 < len(words) and (words[wh + 1] in AUX or wh + 2 < len(words) and words[wh + 2] in AUX)
    content = [w.lower() not in STOP for w, _, _ in toks]

    def distance(run: tuple[int, int]) -> tuple[int, int, int, int]:
        if not anchors:
            return 0, 0, run[1] - run[0], run[0]
        gaps = []
        for k in anchors:
            lo, hi = (k, run[0]) if k < run[0] else (run[1], k)
            gaps.append((sum(content[lo + 1:hi]), int((k < run[0]) != after)))
        gap, wrong_side = min(gaps)
        return gap, wrong_side, run[1] - run[0], run[0]

    if not anchors and scorer is not None and len(runs) > 1:
        # a paraphrased question shares no word with the evidence: the runs that restate what it asks about
        # ("password" for "secret phrase") are like it; the answer is the new information, the least like it
        texts = [evidence[toks[i][1]:toks[j][2]] for i, j in runs]
        sims = [float(x) for x in scorer(question, texts)]
        a, b = runs[min(range(len(runs)), key=lambda k: (sims[k], runs[k][0]))]
    else:
        a, b = min(runs, key=distance)
    head = re.match(r"^\s*(?:which|what)\s+([A-Za-z]+)", question, re.IGNORECASE)
    if head and a > 0 and _stem(toks[a - 1][0]) == _stem(head.group(1)) and head.group(1).lower() not in STOP:
        a -= 1
    if LAST_NAME.search(question):
        a = b
    elif FIRST_NAME.search(question):
        b = a
    return evidence[toks[a][1]:toks[b][2]].strip(" ,.;:!?\"'")


def _restating(qwords: list[str], toks: list[tuple[str, int, int]], anchors: list[int],
               runs: list[tuple[int, int]]) -> set[tuple[int, int]]:
    """The runs that stand right before a word the question (``qwords``) shares, where the question describes
    that word with words of its own: they fill the slot the question already fills, so they restate it
    ("green" in "the green house" for "the glass plant house"), and are not what it asks for."""
    described = {_stem(w) for before, w in zip(qwords, qwords[1:]) if before.lower() not in STOP}
    return {r for r in runs if r[1] + 1 in anchors and _stem(toks[r[1] + 1][0]) in described}


def _proper_runs(evidence: str, toks: list[tuple[str, int, int]], run: tuple[int, int]) -> list[tuple[int, int]]:
    """The stretches of a run that are proper nouns: capitalised words, not merely opening a sentence
    (a capitalised sentence opener counts when the next word is capitalised too: "Hannah Moore said")."""
    def capital(k: int) -> bool:
        return toks[k][0][:1].isupper()

    def opens(k: int) -> bool:
        return k == 0 or re.search(r"[.!?:]\s*$", evidence[toks[k - 1][2]:toks[k][1]]) is not None

    keep = [capital(k) and (not opens(k) or (k + 1 <= run[1] and capital(k + 1))) for k in range(run[0], run[1] + 1)]
    out, start = [], None
    for i, ok in enumerate([*keep, False]):
        if ok and start is None:
            start = i
        elif not ok and start is not None:
            out.append((run[0] + start, run[0] + i - 1))
            start = None
    return out


def read_choice(opts: Sequence[str], evidence: Sequence[str], scorer: Scorer | None) -> tuple[int, list[float]] | None:
    """The option the evidence supports best: each option's best text similarity to an evidence text
    (the text model) plus the share of its words found in the evidence (stems, so "adds" meets "add";
    numbers as digits, so "ten" meets "10")."""
    texts = [t for t in dict.fromkeys(t.strip() for t in evidence) if t]
    if not opts or not texts:
        return None
    said = _said(texts)
    scores = []
    for opt in opts:
        words = _option_words(opt)
        share = sum(w in said for w in words) / len(words)
        sim = max((float(x) for x in scorer(opt, texts)), default=0.0) if scorer is not None else 0.0
        scores.append(round(sim + share, 4))
    return max(range(len(opts)), key=lambda i: scores[i]), scores


def support(option: str, texts: Sequence[str], scorer: Scorer | None) -> list[float]:
    """How well each text supports an option, as ``read_choice`` scores it but text by text: the text
    similarity plus the share of the option's words the text holds."""
    words = _option_words(option)
    sims = [float(x) for x in scorer(option, list(texts))] if scorer is not None and texts else [0.0] * len(texts)
    held = [_said([t]) for t in texts]
    return [sim + sum(w in said for w in words) / len(words) for sim, said in zip(sims, held)]


def mentions(option: str, text: str) -> bool:
    """Whether a text states an option: every word of it (stems; numbers as digits, "three" meets "3")."""
    return set(_option_words(option)) <= _said([text])


def _said(texts: Sequence[str]) -> set[str]:
    return {_stem(w) for t in texts for w, _, _ in _tokens(answer_key(tidy_numbers(t)))}


def _option_words(option: str) -> list[str]:
    key = answer_key(option)
    return [_stem(w) for w, _, _ in _tokens(key) if w not in STOP] or [_stem(key or option)]


def sentences(text: str) -> list[str]:
    """A text's sentences of three words or more, without a leading label ("Said: ..."); a sentence cut
    short ("…") only when there is no other."""
    parts = [re.sub(r"^\w+:\s+", "", p.strip()) for p in re.split(r"(?<=[.!?…;])\s+|\s+/\s+|\n+", text)]
    parts = [p for p in parts if len(p.split()) >= 3]
    return [p for p in parts if not p.endswith("…")] or parts


def read_topic(summary: str, scorer: Scorer | None) -> str | None:
    """The summary's most central sentence (the highest summed text similarity to its other sentences),
    else its first."""
    parts = sentences(summary) or ([summary.strip()] if summary.strip() else [])
    if not parts:
        return None
    if scorer is None or len(parts) < 3:
        return parts[0].rstrip(".")
    central = [sum(float(x) for x in scorer(p, parts)) for p in parts]
    return parts[max(range(len(parts)), key=lambda i: (central[i], -i))].rstrip(".")


SAME_EVENT = 0.8  # a moment counts as another occurrence of an event when its text is this close to the best


def distinct_moments(hits: Sequence[dict[str, Any]], description: str, scorer: Scorer | None,
                     same_text: bool = False) -> list[dict[str, Any]]:
    """The distinct relevant moments among search hits, in time order: fine hits (clip, event, frame; a
    scene or video hit spans several moments) scoring at least ORDER_FRACTION of the best, whose text is
    about the description: its text similarity clears TEXT_FLOOR (the search's own bar) and is at least
    ORDER_FRACTION of the best hit's (short texts of different things can clear the floor alone); and
    that are the thing counted again: a text holding every word of the best-matching one ("CAUTION" in
    "FREEZER -80 CAUTION"), or one nearly as close to the description (SAME_EVENT), not another thing of
    the same topic ("SCORE 3-1" beside "GOAL"). With ``same_text`` (one piece of text counted: "the exit
    sign") only the first way counts: another line near the topic ("FIRST AID") is another sign, however
    close its meaning. Hits that overlap are one moment; its best-scored event
    (utterance or text track: the moment's true extent) stands for it, else its best-scored hit."""
    fine = [h for h in hits if h["level"] not in COARSE]
    if not fine:
        return []
    best = max(h["score"] for h in fine)
    relevant = [h for h in fine if h["score"] >= ORDER_FRACTION * best]
    if scorer is not None and relevant:
        sims = [float(s) for s in scorer(description, [h["snippet"] for h in relevant])]
        top = max(range(len(sims)), key=lambda i: sims[i])
        bar = max(TEXT_FLOOR, ORDER_FRACTION * sims[top])
        same = set(answer_key(relevant[top]["snippet"]).split())  # the best text: the thing counted
        relevant = [h for h, s in zip(relevant, sims)
                    if s >= bar and (same <= set(answer_key(h["snippet"]).split())
                                     or (not same_text and s >= SAME_EVENT * sims[top]))]
    groups: list[dict[str, Any]] = []
    for h in sorted(relevant, key=lambda h: (h["video"], h["start"], h["end"])):
        g = groups[-1] if groups else None
        if g is not None and g["video"] == h["video"] and h["start"] < g["end"]:
            g["end"] = max(g["end"], h["end"])
            if _stands_for(h) > _stands_for(g["hit"]):
                g["hit"] = h
        else:
            groups.append({"video": h["video"], "start": h["start"], "end": h["end"], "hit": h})
    return groups


def _stands_for(hit: dict[str, Any]) -> tuple[bool, float]:
    """Which of a moment's overlapping hits reports it: an event before a clip or frame, then the score."""
    return hit["level"] == "event", hit["score"]


def first_moments(hits: Sequence[dict[str, Any]], sides: Sequence[str], scorer: Scorer
                  ) -> list[dict[str, Any] | None]:
    """For "which comes first, A or B": each side's earliest moment among ``hits`` (both sides' searches
    pooled, since a moment found by one side's search may be the other's), or None.

    Each fine hit is read against every side; it can stand for a side only if it matches that side at
    least as well as any other (a moment is one event, not both), clears TEXT_FLOOR, and scores at least
    SAME_EVENT of the side's best moment: the event itself again, not something merely near its topic (an
    early title that shares one word with a side must not decide the order). Of the hits for that first
    moment, the event (utterance or text track) is reported: it has the moment's true extent.
    """
    fine = [h for h in hits if h["level"] not in COARSE and h.get("snippet")]
    if not fine:
        return [None for _ in sides]
    texts = list(dict.fromkeys(h["snippet"] for h in fine))
    sims = {side: dict(zip(texts, (float(x) for x in scorer(side, texts)))) for side in sides}
    out: list[dict[str, Any] | None] = []
    for side in sides:
        mine = sims[side]
        best = max(mine.values())
        own = [h for h in fine if mine[h["snippet"]] >= max(TEXT_FLOOR, SAME_EVENT * best)
               and all(mine[h["snippet"]] >= sims[o][h["snippet"]] for o in sides if o != side)]
        if not own:
            out.append(None)
            continue
        first = min(own, key=lambda h: (h["start"], -mine[h["snippet"]]))
        # the same moment as an event (an utterance, a text track) carries its true extent, a clip does not
        same = [h for h in own
                if h["video"] == first["video"] and h["start"] < first["end"] and h["end"] > first["start"]]
        out.append(min(same, key=lambda h: (h["level"] != "event", h["end"] - h["start"])))
    return out


__all__ = ["NOT_FOUND", "Scorer", "count_text", "distinct_moments", "first_moments", "kind", "mentions", "numbers",
           "options", "order_sides", "read_choice", "read_name", "read_quantity", "read_text", "read_topic",
           "read_when", "sentences", "support"]
