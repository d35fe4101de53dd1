"""The agent loop as a LangGraph StateGraph: plan -> act -> plan -> ... -> answer.

Both planners (LLM and offline) plug into the same graph and the same tools.
Budgets are explicit: at most ``max_steps`` tool calls and ``max_seconds`` of
wall clock; when either runs out the planner is asked to answer with what it
has, and the Answer says the search was cut short. The wall clock bounds the
planner's own calls too: the state carries the ``deadline`` (``time.monotonic``)
that the LLM planner gives each model call, and a planner whose call runs past it
returns ``exhausted`` instead of an answer, so the graph answers from what the
tools found.
"""

from __future__ import annotations

import operator
import re
import time
from typing import Annotated, Any, Callable, Protocol, TypedDict

from langchain_core.messages import AnyMessage, ToolMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

from .answer import SPAN_SUPPORT, Answer, Evidence, Observation, Span, check_spans, top_moment
from .budget import observation_tokens
from .toolbox import Toolbox, as_data


class Decision(TypedDict, total=False):
    """What a planner returns: tool calls to make, or a final answer."""

    calls: list[dict[str, Any]]  # {"id", "name", "args"}
    final: dict[str, Any]  # {"answer": str, "explanation": str, "spans": [...], "evidence": [step, ...]}
    messages: list[AnyMessage]  # chat messages to append (LLM planner)
    exhausted: str  # the planner ran out of budget (its model did not reply in time): answer from observations
    trace: list[dict[str, Any]]  # notes for the Answer's trace (a timed-out call, a retried tool choice)


class Planner(Protocol):
    name: str

    def start(self, question: str, video: str | None, toolbox: Toolbox, max_steps: int) -> list[AnyMessage]: ...

    def plan(self, state: "AgentState", must_answer: str | None) -> Decision: ...


class AgentState(TypedDict, total=False):
    question: str
    video: str | None
    messages: Annotated[list[AnyMessage], add_messages]
    observations: Annotated[list[Observation], operator.add]
    calls: list[dict[str, Any]]
    final: dict[str, Any] | None
    steps: int
    exhausted: str | None  # why the budget ran out
    deadline: float  # time.monotonic() by which everything, model calls included, must be done
    max_seconds: float
    notes: Annotated[list[dict[str, Any]], operator.add]  # planners' notes for the trace


def run_agent(planner: Planner, toolbox: Toolbox, question: str, video: str | None = None, max_steps: int = 12,
              max_seconds: float = 120.0, on_event: Callable[[dict[str, Any]], None] | None = None) -> Answer:
    """Run the graph to an Answer. ``on_event`` sees each step as it happens."""
    emit = on_event or (lambda e: None)
    started = time.monotonic()

    def plan(state: AgentState) -> dict[str, Any]:
        decision = planner.plan(state, state.get("exhausted"))
        update: dict[str, Any] = {"messages": decision.get("messages", []), "calls": [], "final": None,
                                  "notes": decision.get("trace", [])}
        if decision.get("exhausted") and not state.get("exhausted"):
            update["exhausted"] = decision["exhausted"]
        if decision.get("final") is not None:
            update["final"] = decision["final"]
        elif state.get("exhausted") or decision.get("exhausted"):  # insisted on tools, or out of time
            update["final"] = fallback_final(state.get("observations", []))
        else:
            update["calls"] = decision.get("calls", [])
            if not update["calls"]:
                update["final"] = fallback_final(state.get("observations", []))
        return update

    obs_tokens = observation_tokens(toolbox.context_tokens)

    def act(state: AgentState) -> dict[str, Any]:
        steps, observations, messages = state.get("steps", 0), [], []
        exhausted = None
        for call in state["calls"]:
            if steps >= max_steps:
                exhausted = f"the {max_steps}-step tool budget"
            elif time.monotonic() - started > max_seconds:
                exhausted = f"the {max_seconds:g} s time budget"
            if exhausted:
                obs = Observation(step=steps + 1, tool=call["name"], args=call.get("args", {}),
                                  error=f"not run: {exhausted} is used up")
            else:
                steps += 1
                emit({"event": "tool", "step": steps, "tool": call["name"], "args": call.get("args", {})})
                obs = toolbox.run(steps, call["name"], call.get("args", {}))
                emit({"event": "observation", "step": steps, "tool": obs.tool, "error": obs.error,
                      "moments": len(obs.moments), "seconds": obs.seconds})
                observations.append(obs)
            if call.get("id") is not None:
                messages.append(ToolMessage(content=as_data(obs, obs_tokens), tool_call_id=call["id"],
                                            name=call["name"]))
        if not exhausted and steps >= max_steps:
            exhausted = f"the {max_steps}-step tool budget"
        if not exhausted and time.monotonic() - started > max_seconds:
            exhausted = f"the {max_seconds:g} s time budget"
        return {"steps": steps, "observations": observations, "messages": messages, "exhausted": exhausted}

    def route(state: AgentState) -> str:
        return END if state.get("final") is not None else "act"

    graph = StateGraph(AgentState)
    graph.add_node("plan", plan)
    graph.add_node("act", act)
    graph.add_edge(START, "plan")
    graph.add_conditional_edges("plan", route, {"act": "act", END: END})
    graph.add_edge("act", "plan")
    app = graph.compile()

    init: AgentState = {"question": question, "video": video, "observations": [], "steps": 0, "exhausted": None,
                        "messages": planner.start(question, video, toolbox, max_steps), "calls": [], "final": None,
                        "deadline": started + max_seconds, "max_seconds": max_seconds, "notes": []}
    state = app.invoke(init, {"recursion_limit": 4 * max_steps + 10})
    if getattr(planner, "usage", None):  # the LLM planner's calls and tokens, for the trace and benchmarks
        state = {**state, "notes": [*state.get("notes", []), {"llm_usage": dict(planner.usage)}]}
    return build_answer(question, planner.name, state, toolbox.ctx.settings.span_support if toolbox.ctx else
                        SPAN_SUPPORT, verify=bool(getattr(planner, "verify_support", False)))


def fallback_final(observations: list[Observation]) -> dict[str, Any]:
    """An answer from observations alone: the most confident grounded, else inspected, else searched moment.

    Marked ``fallback``: it is built from the observations, so it needs no check that they support it."""
    for tool in ("ground", "inspect", "search"):
        best = top_moment(observations, (tool,))
        if best is not None:
            m, step = best
            return {"answer": m.text.strip() or "not found",
                    "explanation": f"The best moment found: {m.text}".strip(),
                    "spans": [{"video": m.video, "start": m.start, "end": m.end,
                               "confidence": round(min(max(m.score, 0.0), 1.0) * 0.5, 3)}],
                    "evidence": [step], "fallback": True}
    why = ("Nothing in the library matched the question." if any(not o.error for o in observations)
           else "No tool result came back before the search ended, so nothing was found.")
    return {"answer": "not found", "explanation": why, "spans": [], "evidence": [], "fallback": True}


NOT_FOUND = "not found"
COMMON_WORDS = frozenset("the and for are was were that this with from its it's has have had but not you your "
                         "they them then than there their what when where which who how video videos".split())


def supported(final: dict[str, Any], observations: list[Observation], given: int, kept: int) -> str | None:
    """Why no observation supports a planner's final answer, or None when one does.

    Supported: a span kept by ``check_spans``; or, without one, a "not found" reply, or a reply whose
    words are mostly what the videos said, showed or were seen to contain (the texts of the moments the
    tools returned: not their field names, nor the model's own search queries). Unsupported: no tool
    result at all, or a reply that neither its moments nor its words tie to a result."""
    ok = [o for o in observations if not o.error]
    if not ok:
        return "the model answered without any tool result from the videos"
    if kept:
        return None
    text = str(final.get("answer", "")).lower()
    if not given and NOT_FOUND in text:
        return None
    words = {w for w in re.findall(r"[a-z0-9]+", text) if (len(w) >= 3 or w.isdigit()) and w not in COMMON_WORDS}
    seen = {w for o in ok for m in o.moments for w in re.findall(r"[a-z0-9]+", m.text.lower())}
    # a short reply ("11", "gate 7") needs one of its words in the videos, a longer one at least half
    if words and len(words & seen) >= max(1, len(words) // 2):
        return None
    if given:
        return "none of its moments lies in a moment a tool returned, nor do its words"
    return "no tool result contains what it says"


def build_answer(question: str, planner: str, state: AgentState, max_support: float = SPAN_SUPPORT,
                 verify: bool = False) -> Answer:
    """The Answer of a finished run. ``verify``: a final answer that no observation supports (see
    ``supported``) is returned as unsupported: "not found", confidence 0, the reason in the explanation."""
    final = state.get("final") or {}
    observations = state.get("observations", [])
    spans = []
    for sp in final.get("spans") or []:
        try:
            spans.append(Span(video=str(sp["video"]), start=float(sp["start"]), end=float(sp["end"]),
                              confidence=min(max(float(sp.get("confidence", 0.5)), 0.0), 1.0)))
        except (KeyError, TypeError, ValueError):
            continue
    kept, dropped = check_spans(spans, observations, max_support)
    text = str(final.get("answer", "")).strip() or "(no answer text)"
    explanation = str(final.get("explanation") or "").strip() or text  # replies without one: the answer explains
    why = None if final.get("fallback") or not verify else supported(final, observations, len(spans), len(kept))
    notes = list(state.get("notes") or [])
    if why:  # never a finding: the model's words stay in the trace and, quoted, in the explanation
        said = " ".join(f"{text} {explanation}".split()) if explanation != text else " ".join(text.split())
        notes.append({"unsupported": why, "reply": said[:2000]})
        quote = said if len(said) <= 200 else said[:199] + "…"
        text, kept = NOT_FOUND, []
        explanation = f"Unsupported: {why}, so its reply is not a finding (it said: \u201c{quote}\u201d)."
    exhausted = state.get("exhausted")
    if exhausted:  # the short answer stays what a person would reply; the explanation says it was cut short
        explanation += f" (Search cut short: {exhausted} ran out.)"
    cited = {int(s) for s in final.get("evidence") or [] if str(s).isdigit()}
    evidence = [] if why else _evidence(observations, cited, kept)
    trace = [o.model_dump(exclude={"result"}) for o in observations] + notes
    if dropped:
        trace.append({"dropped_spans": [d.model_dump() for d in dropped],
                      "why": f"not inside any moment a tool returned at a fine level (at most {max_support:g} s)"})
    return Answer(question=question, answer=text, explanation=explanation, spans=kept,
                  confidence=kept[0].confidence if kept else 0.0,
                  evidence=evidence, steps=state.get("steps", 0), planner=planner,
                  budget_exhausted=bool(exhausted), unsupported=bool(why), trace=trace)


def _evidence(observations: list[Observation], cited: set[int], spans: list[Span]) -> list[Evidence]:
    """Cited observations' moments that overlap an answer span (or, without spans, the nearest ones)."""
    out: list[Evidence] = []
    for o in observations:
        if cited and o.step not in cited:
            continue
        for m in o.moments:
            if not m.text or m.text.startswith(("best sub-window", "inspected window")):
                continue
            if spans and not any(m.video == s.video and m.start < s.end and m.end > s.start for s in spans):
                continue
            out.append(Evidence(step=o.step, tool=o.tool, video=m.video, start=m.start, end=m.end, text=m.text))
    seen, unique = set(), []
    for e in sorted(out, key=lambda e: (e.video, e.start, e.step)):
        key = (e.video, round(e.start, 1), e.text)
        if key not in seen:
            seen.add(key)
            unique.append(e)
    return unique[:8]
