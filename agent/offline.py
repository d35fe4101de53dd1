"""The offline planner: a fixed, deterministic policy that needs no LLM.

1. search several phrasings of the question (its content words as a phrase,
   its keywords, each quoted string), in one step;
2. fuse the hits by moment and inspect the best few candidate windows;
3. ground the most convincing one (in the channel the question names, when
   it says "shown" or "said");
4. answer with the grounded span and the evidence it rests on, or say that
   nothing convincing was found (with the nearest evidence), never a guess;
   a multiple-choice question whose moment states none of its options
   searches each option with the question and takes the line that states
   one; the one exception to "never a guess" is a multiple-choice question
   no line answers: its options say that one of them holds, so it gets the
   option the nearest evidence supports best, and the explanation says the
   evidence is weak.

Time words are read once, by ``timewords.parse_time``, and become search
arguments and steps:

- a window ("between 1:00 and 2:00", "after 1:20", "before the 5 minute mark",
  "in the first 20 seconds", "at 0:25", "in the last 10 minutes") goes into
  every search call (``within`` / ``after`` / ``before`` / ``last``), and the
  inspected and grounded windows, and the answer's span, are kept inside it;
- an order ("the first time", "most recently") takes the candidates and the
  inspected windows in time order among the relevant ones (those scoring at
  least ``ORDER_FRACTION`` of the best), not by score alone;
- an occurrence ("the second time") inspects the relevant candidates in time
  order and answers with the N-th of those that hold up;
- an anchor ("right after they mention rain", "while the title is shown") is
  searched and grounded first; its extent makes the window (``anchor_focus``)
  in which the question's own content is searched, in the same video, and the
  answer grounds that target, not the anchor. A question that names no content
  of its own ("what is shown right after ...") inspects the window and takes
  the first (last, overlapping) line said or shown there, in the channel the
  question names, else in another channel than the anchor's;
- a follow-up in a conversation ("and right after?", "before that", "at that
  moment": ``TimeQuery.back``) takes the last answer's moment as its anchor,
  already grounded.

"Not found" is said below a grounded confidence calibrated per text model
(``calibration.py``).

The module is over 500 lines on purpose: the policy is one decision procedure
(plan, its anchored and ordinal steps, the final answer) whose helpers are
only used by it, and it reads best top to bottom in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
import re
from typing import Any

from langchain_core.messages import AnyMessage

from vdisc.index.events import same_line
from vdisc.timefmt import hms
from vdisc.tools.evidence import TEXT_MATCH, text_confidence, text_scores
from vdisc.tools.search import COARSE, ORDER_FRACTION, is_placeholder

from . import calibration, reader
from .answer import Observation, end_sentence, top_moment
from .timewords import Anchor, TimeQuery, parse_time, search_arguments
from .toolbox import Toolbox

N_INSPECT = 2  # candidate windows zoomed into
FINE_LEVELS = ("clip", "frame")  # hits inspected; an event hit's moment comes back through its clip
MIN_RELEVANT = 0.15  # an inspected window this unsure is not among the relevant ones
EXTRA_SPAN_CONFIDENCE = 0.5  # other inspected windows this sure are listed as further spans
OCCURRENCE_SPARE = 1  # candidates inspected beyond the N-th, so one false candidate does not shift the count
# "right after X" / "right before X": the next (previous) moment, about one scene away; edited video cuts
# every few seconds, so the next line said or shown is well inside this, and a later repeat usually is not
RIGHT_AFTER_SECONDS = 30.0
DURING_PAD = 2.0  # "while X": speech and on-screen text rarely start on the same frame
OPEN_LOOK = RIGHT_AFTER_SECONDS  # how far past a one-sided bound ("after 1:20") a content-free question looks
LOOK_OCR_STEP = 1.0  # seconds between text reads when a window is looked at whole: on-screen lines last longer
LOOK_OCR_FRAMES = 16  # at most this many reads (OCR is the slow part of inspect), so long windows read sparser
# a line picked by where it is (the first one after X) rather than by what it says: as sure as a good match
# that ground could not confirm, enough to report, never more than a confirmed one
LOOK_CONFIDENCE = 0.5
MIN_WINDOW = 0.5  # seconds: a window clamped shorter than this holds too few frames to inspect
# A question presupposes its anchor ("what is shown while they talk about Y" says they do): the anchor's line
# must be a match at all (the similarity search calls relevant), not as sure as an answer must be
ANCHOR_CONFIDENCE = text_confidence(TEXT_MATCH)
SAME_WORDS = 0.5  # share of the target's keywords in the anchor's own evidence at which the anchor is the target
DURING_SHARE = 0.5  # share of the shorter of a line and the anchor they must share for the line to be "during" it
SAME_MOMENT = 0.5  # share of an item inside the anchor (same channel) at which it is the anchor itself
COUNT_TOP_K = 50  # hits a "how many times" search lists in time order: every occurrence in a long video
ORDER_TOP_K = 20  # hits per side of a "which comes first" search
COUNT_CONFIDENCE = 0.5  # each counted moment: relevant and about the question, but not grounded one by one
GUESS_EVIDENCE = 8  # a multiple-choice question with no clear moment: its options are read against this many hits
GUESS_CONFIDENCE = 0.1  # ... and the option picked that way is reported this unsure

# Words that frame a question about a video rather than describe the moment.
FRAMING = re.compile(
    r"\b(when|where|what time|at what (point|time|moment)|which (part|moment|scene|point)|how long|"
    r"in (the|this) (video|clip|film|movie)|does|do|did|is|are|was|were|can you|could you|please|"
    r"tell me|show me|find|the moment|the part|the scene|someone|somebody|they|he|she|"
    r"talk(s|ed|ing)? about|mention(s|ed)?|say(s)?|said|spoken|speak(s)?|discuss(es|ed)?|come(s)? up|"
    r"(is |are )?(shown|displayed|written|visible)( on (the )?screen)?|on (the )?screen|appear(s|ed)?)\b",
    re.IGNORECASE,
)
TEXT_CHANNELS = ("speech", "ocr")  # the channels a question can name ("said", "shown"): see channel_hint
# Words that say which channel the moment lives in.
# (verbs of telling are said: "told to stir", "asks visitors", "announces", "warns", "explains")
SPEECH_HINT = re.compile(r"\b(talk\w*|mention\w*|say|says|said|spoken|speak\w*|discuss\w*|hear\w*|voice|"
                         r"narrat\w*|tell|tells|told|ask|asks|asked|announce[sd]?|announcing|explain\w*|remind\w*|"
                         r"warn|warns|warned|advise[sd]?|instruct|instructs|instructed|describ\w*)\b", re.IGNORECASE)
TEXT_HINT = re.compile(r"\b(shown|written|in writing|(on )?(the )?screen|sign|text|read|title|displayed|label|caption|"
                       r"banner|headline)\b", re.IGNORECASE)
SHOWN_HINT = re.compile(r"\b(shown|written|in writing|on (the )?screen|displayed|the screen (says?|reads?|shows?))\b",
                        re.IGNORECASE)
# Pro-forms that stand for any moment ("what happens", "anything seen"): not a description of one.
GENERIC = re.compile(r"\b(happen\w*|going on|go(es)? on|occur\w*|see|seen|hear|heard|visible|there|anything|"
                     r"something|everything|things?|words?|lines?|shows?)\b", re.IGNORECASE)
HINT_BONUS = 0.3  # for an inspected window whose evidence is in the channel the question names
RELATION_WORDS = {"after": "after", "right_after": "right after", "before": "before", "right_before": "right before",
                  "during": "while"}

STOP = frozenset(
    "a an and are as at be been but by for from has have he her his i if in into is it its me my of on or our she "
    "so than that the their them then there these they this those to was we were what which who why will with you "
    "your get gets got say says said mention mentions mentioned talk talks about appear appears appeared shown "
    "show shows screen video".split()
)

# The question's time words, for callers of the old names (one parser: timewords).
TimeHint = TimeQuery
temporal = parse_time


@dataclass
class Focus:
    """Where and how the question's own moment is looked for: a window, an order, an anchor."""

    lo: float | None = None  # seconds the moment must overlap (None: open)
    hi: float | None = None
    last: float | None = None
    order: str = "relevance"
    occurrence: int | None = None
    video: str | None = None  # the anchor's video
    pick: str = "overlap"  # for a content-free question: the "first", "last" or most "overlap"ping item
    ref: tuple[float, float] | None = None  # what "overlap" is measured against
    anchor: dict[str, Any] | None = None  # the grounded anchor: video, start, end, source, evidence, relation
    anchor_step: int | None = None

    @classmethod
    def of(cls, when: TimeQuery) -> "Focus":
        lo, hi = when.bounds()
        pick = "overlap" if lo is not None and hi is not None else "first" if lo is not None else "last"
        return cls(lo=lo, hi=hi, last=when.last, order=when.order, occurrence=when.occurrence, pick=pick,
                   ref=(lo, hi) if lo is not None and hi is not None else None)

    def bounded(self) -> bool:
        return self.lo is not None or self.hi is not None

    def empty(self) -> bool:
        return self.lo is not None and self.hi is not None and self.hi - self.lo < MIN_WINDOW

    def search_args(self) -> dict[str, Any]:
        out = search_arguments(self.order, self.occurrence, self.last, self.lo, self.hi)
        return {**out, "video": self.video} if self.video is not None else out

    def clamp(self, start: float, end: float, least: float = MIN_WINDOW) -> tuple[float, float] | None:
        """[start, end] cut to the window; None when less than ``least`` seconds of it is inside."""
        a = start if self.lo is None else max(start, self.lo)
        b = end if self.hi is None else min(end, self.hi)
        return (round(a, 3), round(b, 3)) if b - a >= least else None

    def look(self) -> tuple[float, float]:
        """The window a content-free question inspects whole: one-sided bounds look OPEN_LOOK seconds on."""
        if self.pick == "first" or self.hi is None:
            lo = self.lo or 0.0
            return lo, lo + OPEN_LOOK if self.hi is None else min(self.hi, lo + OPEN_LOOK)
        if self.pick == "last" or self.lo is None:
            return max(self.lo or 0.0, self.hi - OPEN_LOOK), self.hi
        return self.lo, self.hi


def anchor_focus(when: TimeQuery, anchor: Anchor, found: dict[str, Any]) -> Focus:
    """The window an anchor moment [start, end] makes for its relation, inside the question's own window.

    right after: [end, end + RIGHT_AFTER_SECONDS]; after: [end, end of video]; right before and before
    the same on the other side of start; during: [start, end] widened by DURING_PAD. After-relations take
    the target's earliest relevant moment, before-relations its latest, unless the question orders them.
    """
    a0, a1 = float(found["start"]), float(found["end"])
    rel = anchor.relation
    if rel == "right_after":
        lo, hi, pick = a1, a1 + RIGHT_AFTER_SECONDS, "first"
    elif rel == "after":
        lo, hi, pick = a1, None, "first"
    elif rel == "right_before":
        lo, hi, pick = max(0.0, a0 - RIGHT_AFTER_SECONDS), a0, "last"
    elif rel == "before":
        lo, hi, pick = None, a0, "last"
    else:
        lo, hi, pick = max(0.0, a0 - DURING_PAD), a1 + DURING_PAD, "overlap"
    qlo, qhi = when.bounds()
    lo = qlo if lo is None else lo if qlo is None else max(lo, qlo)
    hi = qhi if hi is None else hi if qhi is None else min(hi, qhi)
    order = when.order
    if order == "relevance" and when.occurrence is None and pick != "overlap":
        order = "earliest" if pick == "first" else "latest"
    return Focus(lo=lo, hi=hi, last=when.last, order=order, occurrence=when.occurrence, video=found["video"],
                 pick=pick, ref=(a0, a1), anchor={**found, "relation": rel})


class OfflinePlanner:
    name = "offline"
    max_steps = 12
    min_confidence = calibration.DEFAULT

    def start(self, question: str, video: str | None, toolbox: Toolbox, max_steps: int) -> list[AnyMessage]:
        self.max_steps = max_steps
        ctx = toolbox.ctx
        # below this a grounded moment is "not found": calibrated for the text model (agent/calibration.py)
        self.min_confidence = calibration.min_confidence(ctx.settings if ctx else None)
        self.scorer: reader.Scorer | None = lambda q, texts: text_scores(ctx, q, texts)  # the tools' text model
        return []  # no conversation: the policy reads the observations

    def plan(self, state: dict[str, Any], must_answer: str | None) -> dict[str, Any]:
        """Route by question type (``reader.kind``): counts, orders and topics have their own steps; every
        other question locates its moment, and the reader turns the grounded evidence into the short answer."""
        question = state["question"]
        ask = question_kind(question)
        if ask == "count":
            return self._count(question, state, must_answer)
        if ask == "order":
            return self._which_first(question, state, must_answer)
        if ask == "topic":
            return self._topic(question, state, must_answer)
        stem, opts = reader.options(question) if ask == "choice" else (question, [])
        if opts and reader.TOPIC.search(stem):  # "what is this video about? (A) ... (B) ..."
            return self._topic(stem, state, must_answer, opts)
        decision = self._locate(stem, state, must_answer)
        if decision.get("final") is not None:
            obs = state.get("observations", [])
            if opts and not any(reader.mentions(o, decision["final"].get("quote") or "") for o in opts):
                # the moment found states none of the options: look for each option said or shown
                asked = {o.args.get("query") for o in obs if o.tool == "search"}
                todo = [q for q in self._option_queries(stem, opts) if q not in asked]
                if todo and not must_answer and len(todo) + state.get("steps", 0) < self.max_steps:
                    return {"calls": [_call("search", {"query": q, "top_k": 10}) for q in todo]}
                stated = self._stated_option(stem, opts, obs)
                if stated is not None:
                    return {**decision, "final": stated}
            final = self._read(ask, stem, opts, decision["final"], obs)
            if opts and not final.get("spans"):
                final = self._best_option(opts, obs) or final
            decision = {**decision, "final": final}
        return decision

    @staticmethod
    def _option_queries(stem: str, opts: list[str]) -> list[str]:
        return [f"{content(stem)}: {o}" for o in opts]

    def _stated_option(self, stem: str, opts: list[str], obs: list[Observation]) -> dict[str, Any] | None:
        """A multiple-choice question whose moment states no option: each option was searched together with
        the question; the option whose search found a line stating it ("booked three nights" for "three"),
        the line most like the question and that option, is the answer, at that line's moment. None when no
        line states any option."""
        if self.scorer is None:
            return None
        best: tuple[float, int, dict[str, Any]] | None = None
        scores = []
        for i, (opt, q) in enumerate(zip(opts, self._option_queries(stem, opts))):
            hits = [h for h in _readable_hits(obs, q) if reader.mentions(opt, h["snippet"])]
            if not hits:
                scores.append(0.0)
                continue
            sims = [float(x) for x in self.scorer(q, [h["snippet"] for h in hits])]
            # of equal lines, the event (an utterance, a text track) carries the moment's true extent
            k = max(range(len(hits)), key=lambda j: (round(sims[j], 4), hits[j]["level"] == "event"))
            scores.append(sims[k])
            if best is None or sims[k] > best[0]:
                best = (sims[k], i, hits[k])
        if best is None:
            return None
        sim, i, h = best
        why = (f'At {hms(h["start"])}–{hms(h["end"])} in {h["video"]}: "{h["snippet"]}" states "{opts[i]}". Each '
               "option searched with the question, best line stating it: "
               + ", ".join(f"{o} {sc:.2f}" for o, sc in zip(opts, scores)) + ".")
        return {"answer": opts[i], "explanation": why, "evidence": sorted({o.step for o in obs}),
                "spans": [{"video": h["video"], "start": h["start"], "end": h["end"],
                           "confidence": text_confidence(sim)}]}

    def _best_option(self, opts: list[str], obs: list[Observation]) -> dict[str, Any] | None:
        """A multiple-choice question whose moment was not found clearly: the question says one of its
        options holds, so the option the nearest evidence (the searches' best moments) supports best is
        the answer, said to rest on weak evidence, with the moment that supports it at low confidence."""
        hits = sorted(_readable_hits(obs), key=lambda h: -h["score"])
        near = list({h["snippet"]: h for h in hits}.values())[:GUESS_EVIDENCE]
        picked = reader.read_choice(opts, [h["snippet"] for h in near], self.scorer)
        if picked is None:
            return None
        i, scores = picked
        support = reader.support(opts[i], [h["snippet"] for h in near], self.scorer)
        h = near[max(range(len(near)), key=lambda k: support[k])]
        why = (f'Nothing matched the question clearly. Of the options, "{opts[i]}" is the one the nearest '
               f'evidence supports best: {hms(h["start"])}–{hms(h["end"])} in {h["video"]} ("{h["snippet"]}"). '
               "Options scored against it: " + ", ".join(f"{o} {sc:.2f}" for o, sc in zip(opts, scores)) + ".")
        return {"answer": opts[i], "explanation": why, "evidence": sorted({o.step for o in obs}),
                "spans": [{"video": h["video"], "start": h["start"], "end": h["end"], "confidence": GUESS_CONFIDENCE}]}

    def _locate(self, question: str, state: dict[str, Any], must_answer: str | None) -> dict[str, Any]:
        obs: list[Observation] = state.get("observations", [])
        when = parse_time(question)
        previous = state.get("previous") or {}
        if when.anchor is None and when.back is not None and previous.get("spans"):
            # a follow-up ("and right after?"): the last answer's moment is the anchor, already grounded
            sp = previous["spans"][0]
            anchor = Anchor(relation=when.back, text=previous["question"])
            line = re.search(r'"(.+?)"', previous.get("explanation") or "")  # the line it rested on
            said = line.group(1) if line else previous.get("answer", "")
            found = {"video": sp["video"], "start": sp["start"], "end": sp["end"], "source": "previous",
                     "evidence": said if len(said) <= 160 else said[:159] + "…"}
            focus, text, tobs = anchor_focus(when, anchor, found), when.text, obs
        elif when.anchor is None:
            focus, text, tobs = Focus.of(when), when.text, obs
        else:
            staged = self._anchor(when, obs, must_answer)
            if "decision" in staged:
                return staged["decision"]
            focus, text, tobs = staged["focus"], staged["text"], staged["obs"]
        return self._target(text, focus, tobs, state, must_answer)

    # ---- the short answer ------------------------------------------------------------------------
    def _read(self, ask: str, question: str, opts: list[str], final: dict[str, Any],
              obs: list[Observation]) -> dict[str, Any]:
        """The final with its short answer: the sentence becomes the explanation, and the reader for the
        question's type reads the grounded evidence (a time span, a number, the on-screen line, the new
        words, the best option); nothing grounded is "not found"."""
        out = {k: v for k, v in final.items() if k not in ("quote", "source")}
        out["explanation"] = final["answer"]
        if not final.get("spans"):
            out["answer"] = reader.NOT_FOUND
            return out
        sp = final["spans"][0]
        quote, source = final.get("quote") or "", final.get("source") or ""
        near = _texts_at(obs, sp["video"], sp["start"], sp["end"])
        when = parse_time(question)
        hint = channel_hint(when.text if when.anchor is not None else question)  # the target's channel, not the anchor's
        short: str | None = None
        if ask == "when":
            short = reader.read_when(sp["start"], sp["end"])
        elif ask == "quantity":
            short = next((x for x in (reader.read_quantity(question, t) for t in [quote, *near]) if x), None)
        elif ask == "text" and source in ("ocr", "speech") and (source == "ocr" or hint != "ocr"):
            short = quote  # the grounded line is in the channel asked about: it is the answer
        elif ask == "text":  # asked for on-screen text, grounded elsewhere: the line shown there
            shown = [t for o in obs if o.tool == "inspect" and o.result and o.result["video"] == sp["video"]
                     for t in sorted(o.result["shown"], key=lambda x: -x["score"])
                     if t["start"] < sp["end"] and t["end"] > sp["start"]]
            short = reader.read_text([t["text"] for t in shown])
        elif ask in ("name", "other") and source == "ocr" and hint == "ocr" and quote:
            short = quote  # "what sign is shown": the line shown is read whole
        elif (ask in ("name", "other") and source == "speech" and quote and not reader.asks_for_words(question)
              and reader.numbers(quote)):
            short = reader.read_quantity(question, quote)  # said: "which door number", "what was the price"
        elif ask == "name":
            short = reader.read_name(question, quote, self.scorer) if quote else None
        elif ask == "choice":
            picked = reader.read_choice(opts, [quote, *near], self.scorer)
            if picked is not None:
                short = opts[picked[0]]
                out["explanation"] += " Options scored against it: " + ", ".join(
                    f"{o} {s:.2f}" for o, s in zip(opts, picked[1])) + "."
        out["answer"] = short or quote or reader.read_when(sp["start"], sp["end"])
        return out

    def _count(self, question: str, state: dict[str, Any], must_answer: str | None) -> dict[str, Any]:
        """"How many times": search the question's content in time order over the whole timeline (its
        window, if it names one), and count the distinct relevant moments (``reader.distinct_moments``)."""
        obs: list[Observation] = state.get("observations", [])
        when = parse_time(reader.count_text(question))
        text = when.text
        if not obs and not must_answer:
            extra = {**Focus.of(when).search_args(), "order": "earliest"}
            hint = channel_hint(text)
            if hint is not None:  # "how many times is X shown": only what is shown counts
                extra["modality"] = hint
            return {"calls": [_call("search", {"query": q, "top_k": COUNT_TOP_K, **extra}) for q in queries(text)]}
        searches = [o for o in obs if o.tool == "search" and o.result]
        description = describe(text)
        shown = channel_hint(text) == "ocr"
        # "the X sign": one piece of text, counted each time it is shown again (a definite description)
        one_text = shown and DEFINITE.match(description) is not None
        if shown:
            description = denoted(description)
        groups = reader.distinct_moments([h for o in searches for h in o.result["hits"]], description, self.scorer,
                                         same_text=one_text)
        listed = "; ".join(f'{hms(g["start"])}–{hms(g["end"])} in {g["video"]} ("{g["hit"]["snippet"]}")'
                           for g in groups)
        why = (f'{len(groups)} distinct moment{"s" if len(groups) != 1 else ""} match "{description}"'
               + (f": {listed}" if listed else "") + ".")
        return {"final": {"answer": str(len(groups)), "explanation": why,
                          "spans": [{"video": g["hit"]["video"], "start": g["hit"]["start"], "end": g["hit"]["end"],
                                     "confidence": COUNT_CONFIDENCE} for g in groups],
                          "evidence": [o.step for o in searches]}}

    def _which_first(self, question: str, state: dict[str, Any], must_answer: str | None) -> dict[str, Any]:
        """"Which comes first (later), A or B?" / "does A happen before (after) B?": search each side in time
        order and compare their earliest moments (``reader.first_moments``: each moment read against both
        sides); the earlier (later) side is the answer, yes or no for "does A happen before B"."""
        obs: list[Observation] = state.get("observations", [])
        form, a, b = reader.order_sides(question) or ("which", question, question)
        sides = [describe(parse_time(x).text) for x in (a, b)]
        if not obs and not must_answer:
            return {"calls": [_call("search", {"query": q, "top_k": ORDER_TOP_K, "order": "earliest"})
                              for q in dict.fromkeys(sides)]}
        hits = [h for o in obs if o.tool == "search" and o.result and o.args.get("query") in sides
                for h in o.result["hits"]]
        firsts = reader.first_moments(hits, sides, self.scorer)
        steps = sorted({o.step for o in obs if o.tool == "search"})
        missing = [x for x, f in zip((a, b), firsts) if f is None]
        if missing:
            return {"final": {"answer": reader.NOT_FOUND, "spans": [], "evidence": steps,
                              "explanation": f'Not found: nothing clearly matches "{missing[0]}", so the order '
                                             "cannot be told."}}
        fa, fb = firsts
        a_first = (fa["start"], fa["end"]) <= (fb["start"], fb["end"])
        if form in ("before", "after"):  # "does A happen before (after) B?"
            short = "yes" if a_first == (form == "before") else "no"
        else:  # "which comes first" names the earlier side, "which comes later" the later one
            short = a if a_first == (form == "which") else b
        why = "; ".join(f'"{x}" first at {hms(f["start"])}–{hms(f["end"])} in {f["video"]} ("{f["snippet"]}")'
                        for x, f in sorted(zip((a, b), firsts), key=lambda xf: xf[1]["start"]))
        spans = [{"video": f["video"], "start": f["start"], "end": f["end"], "confidence": COUNT_CONFIDENCE}
                 for f in sorted(firsts, key=lambda f: f["start"])]
        return {"final": {"answer": short, "explanation": end_sentence(why), "spans": spans, "evidence": steps}}

    def _topic(self, question: str, state: dict[str, Any], must_answer: str | None,
               opts: list[str] | None = None) -> dict[str, Any]:
        """"What is this video about": the video-level summary (a search at level video, the timeline from
        browse beside it) and its most central sentence (``reader.read_topic``), or, given options, the one
        the summary supports best (``reader.read_choice``)."""
        obs: list[Observation] = state.get("observations", [])
        if not obs and not must_answer:
            video = state.get("video")
            return {"calls": [_call("search", {"query": describe(question), "level": "video", "top_k": 3}),
                              _call("browse", {"video": video} if video else {})]}
        hits = [(h, o.step) for o in obs if o.tool == "search" and o.result for h in o.result["hits"]
                if h["level"] == "video"]
        if hits:
            h, step = max(hits, key=lambda hs: hs[0]["score"])
            video, start, end, summary = h["video"], h["start"], h["end"], h["snippet"]
        else:
            views = [(v, o.step) for o in obs if o.tool == "browse" and o.result for v in o.result["videos"]]
            if not views:
                return {"final": {"answer": reader.NOT_FOUND, "spans": [], "evidence": [],
                                  "explanation": "Not found: the library holds no video to describe."}}
            (v, step) = views[0]
            video, start, end = v["video"], 0.0, v["duration"]
            summary = " ".join(s["said"] or s["shown"] or s["seen"] for s in v["scenes"])
        if opts:
            picked = reader.read_choice(opts, [summary, *reader.sentences(summary)], self.scorer)
            short = opts[picked[0]] if picked else None
        else:
            short = reader.read_topic(summary, self.scorer)
        if not short:
            return {"final": {"answer": reader.NOT_FOUND, "spans": [], "evidence": [step],
                              "explanation": f"Not found: {video} has no summary to read."}}
        return {"final": {"answer": short, "explanation": end_sentence(f'{video} as a whole: "{summary}"'),
                          "spans": [{"video": video, "start": start, "end": end, "confidence": COUNT_CONFIDENCE}],
                          "evidence": [step]}}

    # ---- the anchor: searched and grounded first; its extent makes the window -----------------
    def _anchor(self, when: TimeQuery, obs: list[Observation], must_answer: str | None) -> dict[str, Any]:
        anchor = when.anchor
        assert anchor is not None
        grounds = [o for o in obs if o.tool == "ground"]
        if not grounds:  # the anchor phase: every observation so far is about the anchor
            if must_answer or "search" in {o.tool for o in obs}:
                picked = None if must_answer else _pick_anchor(obs, anchor, Focus.of(when))
                if picked is None:
                    why = (f'the search stopped before "{anchor.text}", the moment the question is placed '
                           "against, was found" if must_answer else
                           f'nothing in the library clearly matches "{anchor.text}", the moment the question is '
                           "placed against")
                    return {"decision": {"final": {"answer": f"Not found: {why}.", "spans": [],
                                                   "evidence": sorted({o.step for o in obs})}}}
                v, a, b = picked
                return {"decision": {"calls": [_call("ground", {"video": v, "start": a, "end": b,
                                                                "query": describe(anchor.text)})]}}
            # the question's window bounds the anchor too; the anchor's own order words choose among its moments
            window = {k: v for k, v in Focus.of(when).search_args().items() if k != "order"}
            extra = {**window, **anchor.search_args()}
            calls = [_call("search", {"query": q, "top_k": 10, **extra}) for q in queries(anchor.text)]
            hint = channel_hint(anchor.text)
            if hint:
                calls.append(_call("search", {"query": describe(anchor.text), "top_k": 10, "modality": hint,
                                              **extra}))
            return {"decision": {"calls": calls}}
        g = grounds[0]
        tobs = [o for o in obs if o.step > g.step]
        if g.result is None or g.result["confidence"] < min(self.min_confidence, ANCHOR_CONFIDENCE):
            # no anchor moment: the relation word may have been content ("call after dinner"); ask
            # the whole question without the relation, in the question's own window
            return {"focus": Focus.of(when), "text": f"{when.text} {anchor.text}", "obs": tobs}
        found = {k: g.result[k] for k in ("video", "start", "end", "source", "evidence")}
        if has_content(when.text) and _shares_words(when.text, found["evidence"]):
            # the anchor moment itself holds what the question asks for ("when do they say to bring an
            # umbrella before the rain"): the relation words were content, so ask the whole question
            return {"focus": Focus.of(when), "text": f"{when.text} {anchor.text}", "obs": tobs}
        focus = anchor_focus(when, anchor, found)
        focus.anchor_step = g.step
        if focus.empty():
            return {"decision": {"final": {
                "answer": f"Not found: the window {RELATION_WORDS[anchor.relation]} {hms(found['start'])}–"
                          f"{hms(found['end'])} in {found['video']} lies outside the times the question names.",
                "spans": [], "evidence": [g.step]}}}
        return {"focus": focus, "text": when.text, "obs": tobs}

    # ---- the question's own moment, inside the focus ----------------------------------------------
    def _target(self, text: str, focus: Focus, obs: list[Observation], state: dict[str, Any],
                must_answer: str | None) -> dict[str, Any]:
        done = {o.tool for o in obs}
        hint = channel_hint(text)
        where = channel_hint(text, strict=True)  # a moment of the other channel does not answer it
        query = describe(text)
        meaning = denoted(query) if hint == "ocr" else query
        if meaning != query:
            # "the sign for X" is a piece of text, matched by what it stands for (X), and only by what is shown
            query, where = meaning, "ocr"
        video = focus.video or state.get("video")
        ranked = [c for c in (_clamped(focus, w) for w in candidates(obs, focus.order)) if c is not None]
        # a question that names nothing of its own ("what is shown right after X") is answered by looking
        # at the whole window; one that names something the window does not hold is "not found"
        looking = focus.bounded() and not has_content(text)
        looked = self._looked(obs, focus, hint) if looking else None
        if must_answer and not obs and focus.anchor is not None:
            a = focus.anchor
            return {"final": {"answer": f"Not found: the search stopped after finding the moment the question is "
                                        f"placed against ({hms(a['start'])}–{hms(a['end'])} in {a['video']}), "
                                        f"before the moment {RELATION_WORDS[a['relation']]} it was looked at.",
                              "spans": [], "evidence": [focus.anchor_step]}}
        if must_answer:
            return {"final": self._final(obs, focus, looked, where=where)}
        if "inspect" not in done:
            if looking and video is not None:
                return self._look(video, focus, query)
            if "search" not in done:
                extra = focus.search_args()
                calls = [_call("search", {"query": q, "top_k": 10, **extra}) for q in queries(text)]
                if hint:
                    calls.append(_call("search", {"query": query, "top_k": 10, "modality": hint, **extra}))
                return {"calls": calls}
            if looking and (video or _top_video(obs)) is not None:
                return self._look(video or _top_video(obs), focus, query)
            if not ranked:
                return {"final": self._final(obs, focus, where=where)}
            room = max(1, self.max_steps - state.get("steps", 0) - 1)  # keep a step for ground
            n = focus.occurrence + OCCURRENCE_SPARE if focus.occurrence else N_INSPECT
            return {"calls": [_call("inspect", {"video": v, "start": a, "end": b, "question": query})
                              for v, a, b in ranked[: min(n, room)]]}
        if "ground" not in done:
            inspected = [o for o in obs if o.tool == "inspect" and o.result]
            if looking and len(inspected) == 1:
                r = inspected[0].result
                if looked is not None:  # ground the line the relation points at, by its own words
                    v, a, b, q = looked["video"], looked["start"], looked["end"], looked["text"]
                else:
                    v, a, b, q = r["video"], r["best_start"], r["best_end"], query
                return {"calls": [_call("ground", {"video": v, "start": a, "end": b, "query": q})]}
            if focus.occurrence:
                best = _nth_inspect(inspected, hint, focus.order, focus.occurrence)
                if best is None:
                    return {"final": self._final(obs, focus, short=len(_relevant(inspected, hint)), where=where)}
            else:
                best = _best_inspect(obs, ranked, hint, focus.order)
            if best is None:
                return {"final": self._final(obs, focus, where=where)}
            r = best.result
            window = focus.clamp(r["best_start"], r["best_end"], least=0.0) or (r["best_start"], r["best_end"])
            # a question that says where its moment is ("shown on screen", "said") is grounded in that
            # channel only: a line of the other one beside it cannot answer it (see _final)
            only = {"channel": where} if where in TEXT_CHANNELS else {}
            return {"calls": [_call("ground", {"video": r["video"], "start": window[0], "end": window[1],
                                               "query": query, **only})]}
        grounded = [o for o in obs if o.tool == "ground" and o.result]
        if (looked is None and focus.anchor is not None and hint in TEXT_CHANNELS
                and (not grounded or grounded[-1].result["confidence"] < self.min_confidence)):
            # the anchor placed the moment and the question's words did not pick a line out: a window that
            # holds one line of the channel asked about ("what label is shown while ...") has its answer
            looked = _sole_line(obs, focus, hint)
        return {"final": self._final(obs, focus, looked, where=where)}

    def _look(self, video: str, focus: Focus, query: str) -> dict[str, Any]:
        """Inspect the whole focus window, reading its text often enough that each line's span is known to
        within LOOK_OCR_STEP (a sparse read stretches a line over the gap to the next read frame)."""
        a, b = focus.look()
        reads = min(LOOK_OCR_FRAMES, max(4, math.ceil((b - a) / LOOK_OCR_STEP) + 1))
        return {"calls": [_call("inspect", {"video": video, "start": round(a, 3), "end": round(b, 3),
                                            "question": query, "ocr_frames": reads})]}

    @staticmethod
    def _looked(obs: list[Observation], focus: Focus, hint: str | None) -> dict[str, Any] | None:
        """The line picked from the one whole-window inspection, with its video and step, if there is one."""
        inspected = [o for o in obs if o.tool == "inspect" and o.result]
        if len(inspected) != 1:
            return None
        item = _open_pick(inspected[0].result, focus, hint)
        return None if item is None else {**item, "video": inspected[0].result["video"], "step": inspected[0].step}

    def _final(self, obs: list[Observation], focus: Focus, looked: dict[str, Any] | None = None,
               short: int | None = None, where: str | None = None) -> dict[str, Any]:
        """The answer from the target's observations: the grounded span, kept inside the focus window.

        A line picked by looking at the window is grounded by its own words; a ground that wandered off to
        another line (nothing overlapping the picked one, or a line of another channel that shares its words:
        a sign's "SAMPLE" in a sentence said beside it) is not that line, and the line's span as read answers
        instead, as sure as LOOK_CONFIDENCE.

        A question that says where its moment is (``where``: "said", "shown on screen") is not answered by
        a line of the other channel: planning already favoured the channel asked about, so a moment
        grounded in the other one means nothing there matched, and the answer is "not found" (naming it).
        """
        grounded = [o for o in obs if o.tool == "ground" and o.result]
        inspected = [o for o in obs if o.tool == "inspect" and o.result]
        g = dict(grounded[-1].result, step=grounded[-1].step) if grounded else None
        if looked is not None and (g is None or g["video"] != looked["video"] or g["end"] <= looked["start"]
                                   or g["start"] >= looked["end"] or g["confidence"] < self.min_confidence
                                   or g["source"] != looked["channel"]):
            g = {"video": looked["video"], "start": looked["start"], "end": looked["end"],
                 "confidence": LOOK_CONFIDENCE, "source": looked["channel"], "evidence": looked["text"],
                 "step": looked["step"]}
        span = None if g is None else (g["start"], g["end"]) if not focus.bounded() else focus.clamp(
            g["start"], g["end"], least=1e-3)
        if span is not None and focus.pick == "overlap" and focus.ref is not None:
            # "X while Y": the moment is when both hold (the window's pad only lets in an X that starts a
            # little before or after Y); an X that misses Y itself keeps its padded span
            both = (round(max(span[0], focus.ref[0]), 3), round(min(span[1], focus.ref[1]), 3))
            span = both if both[1] - both[0] >= 1e-3 else span
        crossed = (g is not None and where in TEXT_CHANNELS and g["source"] in TEXT_CHANNELS
                   and g["source"] != where and looked is None)
        if (where in TEXT_CHANNELS and looked is None and not crossed
                and (g is None or g["confidence"] < self.min_confidence)):
            # grounded in the channel asked about and too unsure there: if the other channel holds a line
            # that would be sure enough, that is the nearest candidate to name
            other = _other_line(inspected, where, self.min_confidence)
            if other is not None:
                g, crossed = other, True
        if g is not None and span is not None and g["confidence"] >= self.min_confidence and not crossed:
            spans = [{"video": g["video"], "start": span[0], "end": span[1], "confidence": g["confidence"]}]
            if focus.occurrence is None and focus.anchor is None and looked is None:  # one moment: no extras
                for o in sorted(inspected, key=lambda o: -o.result["confidence"]):
                    r = o.result
                    far = all(r["video"] != s["video"] or r["best_end"] <= s["start"] or r["best_start"] >= s["end"]
                              for s in spans)
                    inside = focus.clamp(r["best_start"], r["best_end"], least=0.0)
                    if far and inside and r["confidence"] >= EXTRA_SPAN_CONFIDENCE:
                        spans.append({"video": r["video"], "start": inside[0], "end": inside[1],
                                      "confidence": round(r["confidence"] * 0.8, 3)})
            what = {"speech": "said", "ocr": "shown on screen", "visual": "seen"}.get(g["source"], "found")
            quote = f': "{g["evidence"]}"' if g["evidence"] else ""
            text = f"At {hms(span[0])}–{hms(span[1])} in {g['video']} ({what}){quote}"
            steps = [g["step"]] + [o.step for o in inspected]
            if focus.anchor is not None:
                a = focus.anchor
                said = {"speech": "said", "ocr": "shown", "visual": "seen", "previous": "the last answer"}.get(
                    a["source"], "found")
                about = f' ({said}: "{a["evidence"]}")' if a["evidence"] else ""
                text += f", {RELATION_WORDS[a['relation']]} {hms(a['start'])}–{hms(a['end'])}{about}"
                steps.append(focus.anchor_step)
            return {"answer": end_sentence(text), "spans": spans, "quote": g["evidence"], "source": g["source"],
                    "evidence": list(dict.fromkeys(s for s in steps if s is not None))}
        if short is not None:
            return {"answer": f"Not found: only {short} matching moment{'s' if short != 1 else ''} were found, not a "
                              f"{_ordinal(focus.occurrence or 1)} one.", "spans": [],
                    "evidence": sorted({o.step for o in obs})}
        if crossed:
            asked, other = (("said", "shown on screen") if where == "speech" else ("shown on screen", "said"))
            return {"answer": f"Not found: the question asks what is {asked}, and nothing {asked} matches it. The "
                              f"closest candidate was {hms(g['start'])}–{hms(g['end'])} in {g['video']} ({other}: "
                              f"\"{g['evidence']}\").", "spans": [], "evidence": sorted({o.step for o in obs})}
        nearest = top_moment(obs, ("ground", "inspect", "search"))
        if nearest is not None:
            m, _ = nearest
            hint = f" The closest candidate was {hms(m.start)}–{hms(m.end)} in {m.video}"
            hint += f' ("{m.text}")' if m.text and not m.text.startswith(("best", "inspected")) else ""
            return {"answer": "Not found: nothing in the library clearly matches the question." + hint + ", "
                    "but it does not fit well enough to report.", "spans": [],
                    "evidence": sorted({o.step for o in obs})}
        return {"answer": "Not found: the search returned nothing for this question.", "spans": [], "evidence": []}


# ---- the question's words ----------------------------------------------------------------------
def question_kind(question: str) -> str:
    """``reader.kind`` of the clause that asks: in "what caption is shown while they say how much butter to
    melt" the anchor ("while ...") places the moment, and the main clause says what is wanted (text)."""
    ask = reader.kind(question)
    when = parse_time(question)
    if ask in ("when", "quantity", "text", "name", "other") and when.anchor is not None:
        return reader.kind(when.text)
    return ask


def describe(text: str) -> str:
    """A text without its framing words (time words already read): the description of the moment."""
    out = " ".join(FRAMING.sub(" ", text.replace("?", " ")).split()).strip(" ,.;:!")
    return out or text.strip()


# Nouns that name a piece of text rather than what it says ("the word for X", "a sign saying X").
TEXT_NOUN = r"(words?|terms?|signs?|labels?|texts?|captions?|titles?|banners?|headings?|messages?|notices?|writing)"
DENOTES = re.compile(rf"^(?:(?:the|a|an|this|that|its|their)\s+)?(?:[\w'-]+\s+){{0,2}}?(?:{TEXT_NOUN}|names?)\s+"
                     r"(?:for|of|meaning|that means|which means|saying|that says|reading|about)\s+(?P<what>.+)$",
                     re.IGNORECASE)
DEFINITE = re.compile(r"^(the|this|that|its|their|his|her)\s", re.IGNORECASE)


def denoted(description: str) -> str:
    """What a description of a piece of text says the text stands for: "the word for an inspection station"
    -> "an inspection station", "the name of Portugal's capital" -> "Portugal's capital". A sign reads
    "CHECKPOINT", not "the word for ...": its own meaning is what to match. Anything else comes back as it
    is, "the warning sign" too: there the noun is part of what tells one sign from another ("the emergency
    way out" alone is nearer "FIRST AID" than "EXIT 3")."""
    m = DENOTES.match(description)
    return m["what"] if m else description


def _keys(description: str) -> str:
    words = [w for w in re.findall(r"[\w'-]+", description.lower()) if w not in STOP]
    return " ".join(dict.fromkeys(words))


def content(question: str) -> str:
    """The question without its framing and time words: the description of the moment."""
    return describe(parse_time(question.replace("?", " ")).text)


def keywords(question: str) -> str:
    return _keys(content(question))


def quoted(question: str) -> list[str]:
    return [q.strip() for pair in re.findall(r'"([^"]+)"|“([^”]+)”|\'([^\']{3,})\'', question)
            for q in pair if q.strip()]


def queries(text: str) -> list[str]:
    """Distinct search queries for a text without time words: quoted strings, its description, its keywords."""
    description = describe(text)
    shown = denoted(description) if channel_hint(text) == "ocr" else description
    out = [*quoted(text), description, shown, _keys(description)]
    return [q for q in dict.fromkeys(x for x in out if x)]


def phrasings(question: str) -> list[str]:
    """Distinct search queries for a question: quoted strings, its content, its keywords."""
    return queries(parse_time(question).text)


def has_content(text: str) -> bool:
    """Whether a text (time words read) describes a moment, beyond question words, channel words and
    pro-forms: "what is shown" and "what happens" do not, "when is the harbor sign shown" does."""
    rest = GENERIC.sub(" ", TEXT_HINT.sub(" ", SPEECH_HINT.sub(" ", describe(text))))
    return bool(quoted(text)) or bool(_keys(rest))


def candidates(obs: list[Observation], order: str = "relevance") -> list[tuple[str, float, float]]:
    """Candidate windows from all searches, fused by moment (summed scores), best first.

    Frame hits widen to a few seconds around the frame; scene, hour, day and
    video hits are too coarse to inspect and only count when nothing finer
    was found. Event hits (utterances, text tracks) are not windows of their own
    here: measured on the dev split they changed nothing, and ground restores
    an event's extent from the clip. With an ``order`` ("earliest" / "latest") the relevant windows
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
            bucket = scores if h["level"] in FINE_LEVELS else coarse
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


def channel_hint(question: str, strict: bool = False) -> str | None:
    """"speech" or "ocr" when the question says where the moment is (said / shown), else None. ``strict``:
    on screen only by words that can mean nothing else ("written", "displayed"), not by nouns that may be
    what the moment is about ("sign the ball", "a text message")."""
    shown = SHOWN_HINT if strict else TEXT_HINT
    speech, text = bool(SPEECH_HINT.search(question)), bool(shown.search(question))
    return "speech" if speech and not text else "ocr" if text and not speech else None


def _shares_words(text: str, evidence: str) -> bool:
    """Whether at least SAME_WORDS of a text's keywords occur in the evidence (compared by their first
    five letters, so "launches" meets "launch")."""
    keys = [w[:5] for w in _keys(describe(text)).split()]
    said = {w[:5] for w in re.findall(r"[\w'-]+", evidence.lower())}
    return bool(keys) and sum(k in said for k in keys) >= SAME_WORDS * len(keys)


def _clamped(focus: Focus, window: tuple[str, float, float]) -> tuple[str, float, float] | None:
    v, a, b = window
    if focus.video is not None and v != focus.video:
        return None
    if not focus.bounded():
        return window
    inside = focus.clamp(a, b)
    return None if inside is None else (v, *inside)


def _readable_hits(obs: list[Observation], query: str | None = None) -> list[dict[str, Any]]:
    """The searches' fine hits (a moment, not a scene or video) that have text of their own to read, from
    every search or only the one for ``query``."""
    return [h for o in obs if o.tool == "search" and o.result and (query is None or o.args.get("query") == query)
            for h in o.result["hits"] if h["level"] not in COARSE and h["snippet"] and not is_placeholder(h["snippet"])]


def _top_video(obs: list[Observation]) -> str | None:
    hits = [h for o in obs if o.tool == "search" and o.result for h in o.result["hits"]]
    return max(hits, key=lambda h: h["score"])["video"] if hits else None


def _pick_anchor(obs: list[Observation], anchor: Anchor, window: Focus) -> tuple[str, float, float] | None:
    """The anchor's candidate window: the best, or the N-th in time order for "the second time"."""
    order = anchor.search_args().get("order", "relevance")
    ranked = [c for c in (_clamped(window, w) for w in candidates(obs, order)) if c is not None]
    n = anchor.occurrence or 1
    return ranked[n - 1] if len(ranked) >= n else None


def _texts_at(obs: list[Observation], video: str, start: float, end: float) -> list[str]:
    """What the observations said was said or shown overlapping [start, end] of a video, best scored first."""
    found = [m for o in obs for m in o.moments if m.video == video and m.start < end and m.end > start
             and m.text and not m.text.startswith(("best sub-window", "inspected window"))]
    return list(dict.fromkeys(m.text for m in sorted(found, key=lambda m: -m.score)))


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def _open_pick(r: dict[str, Any], focus: Focus, hint: str | None) -> dict[str, Any] | None:
    """For a question that names no content ("what is shown right after X"): the line said or shown in the
    inspected window that the relation points at (the first after, the last before, the most overlapping
    during; of the lines over most of it, the fuller one), in the channel the question names, else preferring another
    channel than the anchor's; the anchor itself is never the answer."""
    items = [{**x, "channel": "speech"} for x in r["spoken"]] + [{**x, "channel": "ocr"} for x in r["shown"]]
    items = [x for x in items if len(x["text"].strip()) > 1 and x["end"] > x["start"]]
    a = focus.anchor
    if a is not None:
        items = [x for x in items if not _is_anchor(x, a)]
    if hint:
        items = [x for x in items if x["channel"] == hint] or items
    elif a is not None:
        items = [x for x in items if x["channel"] != a["source"]] or items
    if not items:
        return None
    if focus.pick == "first":
        return min(items, key=lambda x: (x["start"], -x["score"]))
    if focus.pick == "last":
        return max(items, key=lambda x: (x["end"], x["score"]))
    ref = focus.ref or (r["start"], r["end"])

    def during(x: dict[str, Any]) -> tuple[bool, int, float, float]:
        # every line over most of the stretch is "during" it; of those the fuller reading ("ROOM 305" beside
        # a stray "AA" read a little longer), since a content-free question's score says little
        shared = _overlap((x["start"], x["end"]), ref)
        most = shared >= DURING_SHARE * min(x["end"] - x["start"], ref[1] - ref[0])
        return most, _fullness(x["text"]), round(shared, 3), x["score"]

    return max(items, key=during)


def _sole_line(obs: list[Observation], focus: Focus, channel: str) -> dict[str, Any] | None:
    """The one line of ``channel`` the inspected windows hold over the anchor's moment, as a looked-at pick
    (``_looked``), or None when they hold none or several (OCR's readings of one line count once). The anchor
    itself is never the answer."""
    a, ref = focus.anchor, focus.ref
    if a is None or ref is None:
        return None
    key = "shown" if channel == "ocr" else "spoken"
    lines = [(o, {**x, "channel": channel}) for o in obs if o.tool == "inspect" and o.result
             for x in o.result.get(key) or []]
    lines = [(o, x) for o, x in lines if len(x["text"].strip()) > 1 and _overlap((x["start"], x["end"]), ref) > 0
             and not _is_anchor(x, a)]
    texts: list[str] = []
    for _, x in lines:
        if not any(same_line(x["text"], t) for t in texts):
            texts.append(x["text"])
    if len(texts) != 1:
        return None
    o, x = max(lines, key=lambda ox: (_fullness(ox[1]["text"]), ox[1]["score"]))
    return {**x, "video": o.result["video"], "step": o.step}


def _is_anchor(x: dict[str, Any], a: dict[str, Any]) -> bool:
    """Whether a line (with its ``channel``) is the anchor itself: of the anchor's channel and mostly over
    the anchor's moment (SAME_MOMENT of its own length)."""
    return x["channel"] == a["source"] and (
        _overlap((x["start"], x["end"]), (a["start"], a["end"])) >= SAME_MOMENT * (x["end"] - x["start"]))


def _fullness(text: str) -> int:
    """How much of a line a reading holds (its letters and digits): of two readings, the fuller one."""
    return len(re.findall(r"\w", text))


def _other_line(inspected: list[Observation], where: str, cut: float) -> dict[str, Any] | None:
    """The best line of the channel *not* asked about in the inspected windows, as a ground result, if its
    match would clear the "not found" cut (the mapping ground uses, ``evidence.text_confidence``)."""
    key, source = ("spoken", "speech") if where == "ocr" else ("shown", "ocr")
    lines = [(o.result["video"], x) for o in inspected for x in o.result.get(key) or [] if x["text"].strip()]
    if not lines:
        return None
    video, x = max(lines, key=lambda vx: vx[1]["score"])
    confidence = text_confidence(x["score"])
    if confidence < cut:
        return None
    return {"video": video, "start": x["start"], "end": x["end"], "confidence": confidence, "source": source,
            "evidence": x["text"]}


def _relevant(inspected: list[Observation], hint: str | None) -> list[Observation]:
    """Inspected windows scoring at least ORDER_FRACTION of the best (with the channel bonus)."""
    if not inspected:
        return []

    def score(o: Observation) -> float:
        return o.result["confidence"] + (HINT_BONUS if hint and o.result["source"] == hint else 0.0)

    best = max(score(o) for o in inspected)
    return [o for o in inspected if score(o) >= ORDER_FRACTION * best and o.result["confidence"] >= MIN_RELEVANT]


def _nth_inspect(inspected: list[Observation], hint: str | None, order: str, n: int) -> Observation | None:
    """The N-th relevant inspected window in time order (from the end for "latest"), or None."""
    relevant = _relevant(inspected, hint)
    if order == "latest":
        relevant.sort(key=lambda o: (-o.result["best_end"], -o.result["confidence"]))
    else:
        relevant.sort(key=lambda o: (o.result["best_start"], -o.result["confidence"]))
    return relevant[n - 1] if len(relevant) >= n else None


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


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def _call(name: str, args: dict[str, Any]) -> dict[str, Any]:
    return {"id": None, "name": name, "args": args}


__all__ = ["Focus", "OfflinePlanner", "TimeHint", "anchor_focus", "channel_hint", "content", "describe",
           "has_content", "keywords", "phrasings", "queries", "quoted", "temporal"]
