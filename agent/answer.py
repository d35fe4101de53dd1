"""The result of `ask`: an answer with moments, evidence and the trace.

Every span in an Answer comes from a tool observation: ``check_spans`` keeps
only spans that lie inside a moment some tool returned (a small tolerance
allowed), so a planner cannot invent a timestamp.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, PrivateAttr, model_validator

from vdisc.timefmt import hms

SPAN_TOLERANCE = 1.0  # seconds a reported span may stick out of the observed moment
SPAN_SUPPORT = 60.0  # default of Settings.span_support: longer moments say where to look, not when


class Span(BaseModel):
    video: str
    start: float
    end: float
    confidence: float = Field(0.0, ge=0.0, le=1.0)


class Moment(BaseModel):
    """A timed thing a tool returned: the only source of answer spans."""

    video: str
    start: float
    end: float
    text: str = ""
    score: float = 0.0
    fine: bool = True  # False for overviews (a browse entry, a video, an hour, a day): no support for a span


class Observation(BaseModel):
    step: int
    tool: str
    args: dict[str, Any]
    result: dict[str, Any] | None = None
    error: str | None = None
    moments: list[Moment] = []
    seconds: float = 0.0


class Evidence(BaseModel):
    step: int
    tool: str
    video: str
    start: float
    end: float
    text: str


class Answer(BaseModel):
    """``answer`` is the short reply a person would give ("11", "14%", "gate 7", "not found");
    ``explanation`` is the sentence it rests on (where and when, the quote); without one it is the answer."""

    question: str
    answer: str
    explanation: str = ""
    spans: list[Span] = []
    confidence: float = 0.0
    evidence: list[Evidence] = []
    steps: int = 0
    planner: str = ""
    budget_exhausted: bool = False
    unsupported: bool = False  # the planner's reply had no support in any tool result: not a finding
    conversation: str | None = None  # the thread this answer is a turn of (``followup`` continues it)
    trace: list[dict[str, Any]] = []
    _paths: dict[str, str] = PrivateAttr(default_factory=dict)  # video name -> file, for thumbnails
    _followup: Any = PrivateAttr(default=None)  # set by Library.ask: question -> the next turn's Answer

    def followup(self, question: str, **kwargs: Any) -> "Answer":
        """Ask a follow-up in the same conversation ("and what happened right after?"): the same library,
        planner and video; the earlier turns are what its time words and pronouns are read against."""
        if self._followup is None:
            raise ValueError("this answer is not part of a conversation (it did not come from Library.ask)")
        return self._followup(question, **kwargs)

    @model_validator(mode="after")
    def _explained(self) -> "Answer":
        if not self.explanation:
            self.explanation = self.answer
        return self

    def to_dict(self, trace: bool = False) -> dict[str, Any]:
        """The JSON of `vdisc ask --json` (with the trace when asked)."""
        keys = {"question", "answer", "explanation", "spans", "confidence", "evidence", "steps", "planner",
                "conversation"}
        if trace:
            keys.add("trace")
        if self.unsupported:  # only when true, so the usual answer keeps its documented keys
            keys.add("unsupported")
        return self.model_dump(include=keys)

    def _repr_html_(self) -> str:
        # presentation is asked for by the notebook, at display time: the page's renderer is imported only then
        from vdisc.web.render import Media, answer_html

        return answer_html(self, Media.inline(self._paths))


def check_spans(spans: list[Span], observations: list[Observation],
                max_support: float = SPAN_SUPPORT) -> tuple[list[Span], list[Span]]:
    """(kept, dropped): a span is kept when a fine observed moment of the same video, no longer than
    ``max_support`` seconds, contains it. An overview covers everything, so it supports nothing."""
    moments = [m for o in observations for m in o.moments if m.fine and m.end - m.start <= max_support]
    kept, dropped = [], []
    for sp in spans:
        ok = sp.end >= sp.start and any(
            m.video == sp.video and m.start - SPAN_TOLERANCE <= sp.start and sp.end <= m.end + SPAN_TOLERANCE
            for m in moments
        )
        (kept if ok else dropped).append(sp)
    return kept, dropped


def top_moment(observations: list[Observation], tools: tuple[str, ...]) -> tuple[Moment, int] | None:
    """The best-scored first moment among these tools' observations, with its step (the earliest on a tie)."""
    cands = [(m, o.step) for o in observations if o.tool in tools for m in o.moments[:1]]
    return max(cands, key=lambda c: c[0].score) if cands else None


def span_text(span: Span) -> str:
    return f"{hms(span.start)}–{hms(span.end)} {span.video}"


SENTENCE_ENDS = (".", "!", "?", "…")
CLOSERS = "\"'”’»)]"


def end_sentence(text: str) -> str:
    """``text`` punctuated once: a full stop is added unless it already ends a sentence (``.``, ``!``, ``?``,
    ``…``), also when that mark sits inside closing quotes or brackets (``...tomorrow."``)."""
    body = text.rstrip()
    return body if body.rstrip(CLOSERS).endswith(SENTENCE_ENDS) else body + "."
