"""HTML for an Answer in a notebook: the answer, each moment with a thumbnail, the evidence."""

from __future__ import annotations

from typing import Any

from vdisc.index.render import escape, hms, moment_row


def answer_html(answer: Any, paths: dict[str, str]) -> str:
    rows = "".join(moment_row(s.video, s.start, s.end, f"confidence {s.confidence:.2f}", paths)
                   for s in answer.spans)
    ev = "".join(f"<li>{hms(e.start)}–{hms(e.end)} {escape(e.video)} [{escape(e.tool)}]: {escape(e.text)}</li>"
                 for e in answer.evidence)
    return (f"<div><p><b>{escape(answer.question)}</b></p><p>{escape(answer.answer)}</p>{rows}"
            f"{'<ul>' + ev + '</ul>' if ev else ''}<p style='color:#888'>{answer.steps} tool calls, "
            f"{escape(answer.planner)} planner</p></div>")
