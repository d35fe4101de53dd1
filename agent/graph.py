"""The agent loop as a LangGraph StateGraph: plan -> act -> plan -> ... -> answer.

Both planners (LLM and offline) plug into the same graph and the same tools.
Budgets are explicit: at most ``max_steps`` tool calls and ``max_seconds`` of
wall clock; when either runs out the planner is asked to answer with what it
has, and the Answer says the search was cut short.
"""

from __future__ import annotations

import operator
import time
from typing import Annotated, Any, Callable, Protocol, TypedDict

from langchain_core.messages import AnyMessage, ToolMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

from .answer import SPAN_SUPPORT, Answer, Evidence, Observation, Span, check_spans, top_moment
from .toolbox import Toolbox, as_data


class Decision(TypedDict, total=False):
    """What a planner returns: tool calls to make, or a final answer."""

    calls: list[dict[str, Any]]  # {"id", "name", "args"}
    final: dict[str, Any]  # {"answer": str, "explanation": str, "spans": [...], "evidence": [step, ...]}
    messages: list[AnyMessage]  # chat messages to append (LLM planner)


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


def run_agent(planner: Planner, toolbox: Toolbox, question: str, video: str | None = None, max_steps: int = 12,
              max_seconds: float = 120.0, on_event: Callable[[dict[str, Any]], None] | None = None) -> Answer:
    """Run the graph to an Answer. ``on_event`` sees each step as it happens."""
    emit = on_event or (lambda e: None)
    started = time.monotonic()

    def plan(state: AgentState) -> dict[str, Any]:
        decision = planner.plan(state, state.get("exhausted"))
        update: dict[str, Any] = {"messages": decision.get("messages", []), "calls": [], "final": None}
        if decision.get("final") is not None:
            update["final"] = decision["final"]
        elif state.get("exhausted"):  # the planner insisted on tools: answer for it
            update["final"] = fallback_final(state.get("observations", []))
        else:
            update["calls"] = decision.get("calls", [])
            if not update["calls"]:
                update["final"] = fallback_final(state.get("observations", []))
        return update

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
                messages.append(ToolMessage(content=as_data(obs), tool_call_id=call["id"], name=call["name"]))
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
                        "messages": planner.start(question, video, toolbox, max_steps), "calls": [], "final": None}
    state = app.invoke(init, {"recursion_limit": 4 * max_steps + 10})
    return build_answer(question, planner.name, state, toolbox.ctx.settings.span_support if toolbox.ctx else
                        SPAN_SUPPORT)


def fallback_final(observations: list[Observation]) -> dict[str, Any]:
    """An answer from observations alone: the most confident grounded, else inspected, else searched moment."""
    for tool in ("ground", "inspect", "search"):
        best = top_moment(observations, (tool,))
        if best is not None:
            m, step = best
            return {"answer": m.text.strip() or "not found",
                    "explanation": f"The best moment found: {m.text}".strip(),
                    "spans": [{"video": m.video, "start": m.start, "end": m.end,
                               "confidence": round(min(max(m.score, 0.0), 1.0) * 0.5, 3)}],
                    "evidence": [step]}
    return {"answer": "not found", "explanation": "Nothing in the library matched the question.", "spans": [],
            "evidence": []}


def build_answer(question: str, planner: str, state: AgentState, max_support: float = SPAN_SUPPORT) -> Answer:
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
    exhausted = state.get("exhausted")
    if exhausted:  # the short answer stays what a person would reply; the explanation says it was cut short
        explanation += f" (Search cut short: {exhausted} ran out.)"
    cited = {int(s) for s in final.get("evidence") or [] if str(s).isdigit()}
    evidence = _evidence(observations, cited, kept)
    trace = [o.model_dump(exclude={"result"}) for o in observations]
    if dropped:
        trace.append({"dropped_spans": [d.model_dump() for d in dropped],
                      "why": f"not inside any moment a tool returned at a fine level (at most {max_support:g} s)"})
    return Answer(question=question, answer=text, explanation=explanation, spans=kept,
                  confidence=kept[0].confidence if kept else 0.0,
                  evidence=evidence, steps=state.get("steps", 0), planner=planner,
                  budget_exhausted=bool(exhausted), trace=trace)


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
