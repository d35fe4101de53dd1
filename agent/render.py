"""HTML for an Answer: the answer, each moment as a row with the evidence for it, the rest of the evidence.

Uses the shared row renderer (``index.render``), so a notebook and ``vdisc serve`` show answers alike.
"""

from __future__ import annotations

from typing import Any

from vdisc.index.render import Media, escape, hms, moment_row


def answer_html(answer: Any, media: Media) -> str:
    used: set[int] = set()
    rows = []
    for s in answer.spans:
        # evidence overlapping a span is listed under it: the reason to believe that moment
        notes = []
        for i, e in enumerate(answer.evidence):
            if e.video == s.video and e.start < s.end and e.end > s.start:
                used.add(i)
                notes.append(f"{hms(e.start)}–{hms(e.end)} [{e.tool}] {e.text}")
        rows.append(moment_row(s.video, s.start, s.end, f"confidence {s.confidence:.2f}", media, notes=notes))
    rest = "".join(f"<li>{hms(e.start)}–{hms(e.end)} {escape(e.video)} [{escape(e.tool)}]: {escape(e.text)}</li>"
                   for i, e in enumerate(answer.evidence) if i not in used)
    budget = " (budget used up)" if getattr(answer, "budget_exhausted", False) else ""
    return (f'<div class="vdisc-answer"><p><b>{escape(answer.question)}</b></p>'
            f'<p class="vdisc-answer-text">{escape(answer.answer)}</p>{"".join(rows)}'
            f"{'<p>other evidence:</p><ul>' + rest + '</ul>' if rest else ''}<p style='color:#888'>{answer.steps} "
            f"tool calls, {escape(answer.planner)} planner{budget}</p></div>")
