"""The agent loop as a LangGraph StateGraph: plan -> act -> plan -> ... -> answer.

Both planners (LLM and offline) plug into the same graph and the same tools.
Budgets are explicit: at most ``max_steps`` tool calls and ``max_seconds`` of
wall clock; when either runs out the planner is asked to answer with what it
has, and the Answer says the search was cut short. The wall clock bounds the
planner's own calls too: the state carries the ``deadline`` (``time.monotonic``)
that the LLM planner gives each model call, and a planner whose call runs past it
returns ``exhausted`` instead of an answer, so the graph answers from what the
tools found.

The calls of one planner turn run as parallel ``act`` tasks (``Send``); the next
``plan`` takes their results in call order. Each tool step is written to the
graph's stream, and ``on_event`` is fed from that stream: the CLI trace, the
page's server-sent events and a notebook callback all see the same events. With
a conversation id the graph is checkpointed (``agent.conversation``) and a run
is one turn of it.
"""

from __future__ import annotations

import operator
import re
import time
from pathlib import Path
from typing import Annotated, Any, Callable, Protocol, TypedDict

from langchain_core.messages import AnyMessage, SystemMessage, ToolMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.config import get_stream_writer
from langgraph.types import Overwrite, Send

from .answer import SPAN_SUPPORT, Answer, Evidence, Moment, Observation, Span, check_spans, top_moment
from .budget import observation_tokens
from .conversation import checkpointer
from .reader import NOT_FOUND, STOP
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
    results: Annotated[list[dict[str, Any]], operator.add]  # a round's tool results, as the parallel tools end
    previous: dict[str, Any] | None  # the conversation's last turn: question, answer, explanation, spans
    turns: Annotated[list[dict[str, Any]], operator.add]  # every finished turn of the conversation


def run_agent(planner: Planner, toolbox: Toolbox, question: str, video: str | None = None, max_steps: int = 12,
              max_seconds: float = 120.0, on_event: Callable[[dict[str, Any]], None] | None = None,
              conversation: str | None = None, home: Path | None = None) -> Answer:
    """Run the graph to an Answer. ``on_event`` sees each step as it happens. With a ``conversation`` id
    (and the library ``home``), the run is a turn of that conversation (``agent.conversation``): its state
    is checkpointed, and an earlier turn is what a follow-up question is read against."""
    emit = on_event or (lambda e: None)
    started = time.monotonic()

    obs_tokens = observation_tokens(toolbox.context_tokens)

    def reply(call: dict[str, Any], obs: Observation) -> list[ToolMessage]:
        """The tool message a chat model's call gets back (the offline planner's calls have no id)."""
        if call.get("id") is None:
            return []
        return [ToolMessage(content=as_data(obs, obs_tokens), tool_call_id=call["id"], name=call["name"])]

    def plan(state: AgentState) -> dict[str, Any]:
        # the last round's results, in call order whatever order the parallel tools finished in
        done = sorted(state.get("results") or [], key=lambda r: r["call"]["step"])
        new_obs = [r["obs"] for r in done]
        tool_msgs = [m for r in done for m in reply(r["call"], r["obs"])]
        steps = state.get("steps", 0)
        exhausted = state.get("exhausted")
        if not exhausted and done and steps >= max_steps:
            exhausted = f"the {max_steps}-step tool budget"
        if not exhausted and done and time.monotonic() - started > max_seconds:
            exhausted = f"the {max_seconds:g} s time budget"
        view = {**state, "observations": [*state.get("observations", []), *new_obs],
                "messages": [*state.get("messages", []), *tool_msgs], "exhausted": exhausted}
        decision = planner.plan(view, exhausted)
        update: dict[str, Any] = {"observations": new_obs, "results": Overwrite([]), "calls": [], "final": None,
                                  "notes": decision.get("trace", []), "exhausted": exhausted}
        messages = [*tool_msgs, *decision.get("messages", [])]
        if decision.get("exhausted") and not exhausted:
            update["exhausted"] = decision["exhausted"]
        if decision.get("final") is not None:
            update["final"] = decision["final"]
        elif exhausted or decision.get("exhausted"):  # insisted on tools, or out of time
            update["final"] = fallback_final(view["observations"])
        else:
            scheduled, why = [], None
            for call in decision.get("calls", []):  # the budget decides what runs; the rest is said not to
                if why is None and steps >= max_steps:
                    why = f"the {max_steps}-step tool budget"
                elif why is None and time.monotonic() - started > max_seconds:
                    why = f"the {max_seconds:g} s time budget"
                if why is not None:
                    messages += reply(call, Observation(step=steps + 1, tool=call["name"], args=call.get("args", {}),
                                                        error=f"not run: {why} is used up"))
                    continue
                steps += 1
                scheduled.append({**call, "step": steps})
            update["calls"], update["steps"] = scheduled, steps
            if why is not None:
                update["exhausted"] = why
            if not scheduled:
                update["final"] = fallback_final(view["observations"])
        update["messages"] = messages
        return update

    def act(task: dict[str, Any]) -> dict[str, Any]:
        """One tool call; the calls of one planner turn run as parallel tasks (``Send``)."""
        call, write = task["call"], get_stream_writer()
        write({"event": "tool", "step": call["step"], "tool": call["name"], "args": call.get("args", {})})
        obs = toolbox.run(call["step"], call["name"], call.get("args", {}))
        write({"event": "observation", "step": call["step"], "tool": obs.tool, "error": obs.error,
               "moments": len(obs.moments), "seconds": obs.seconds})
        return {"results": [{"call": call, "obs": obs}]}

    def route(state: AgentState) -> Any:
        if state.get("final") is not None:
            return END
        return [Send("act", {"call": c}) for c in state["calls"]]

    graph = StateGraph(AgentState)
    graph.add_node("plan", plan)
    graph.add_node("act", act)
    graph.add_edge(START, "plan")
    graph.add_conditional_edges("plan", route, ["act", END])
    graph.add_edge("act", "plan")

    def invoke(app: Any, state: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
        """Run the graph, streaming: each tool step reaches ``on_event`` as the tools write it."""
        values: dict[str, Any] = state
        for mode, chunk in app.stream(state, config, stream_mode=["custom", "values"]):
            if mode == "custom":
                emit(chunk)
            else:
                values = chunk
        return values

    max_support = toolbox.ctx.settings.span_support if toolbox.ctx else SPAN_SUPPORT
    verify = bool(getattr(planner, "verify_support", False))
    limit = {"recursion_limit": 4 * max_steps + 10}
    if conversation is None or home is None:
        state = invoke(graph.compile(), _turn(planner, toolbox, question, video, max_steps, started, max_seconds,
                                              None), limit)
        return build_answer(question, planner.name, _with_usage(state, planner), max_support, verify=verify)

    with checkpointer(home) as saver:
        app = graph.compile(checkpointer=saver)
        config = {**limit, "configurable": {"thread_id": conversation}}
        previous = (app.get_state(config).values.get("turns") or [None])[-1]
        state = invoke(app, _turn(planner, toolbox, question, video, max_steps, started, max_seconds, previous),
                       config)
        answer = build_answer(question, planner.name, _with_usage(state, planner), max_support, verify=verify)
        answer.conversation = conversation
        app.update_state(config, {"turns": [{
            "question": question, "answer": answer.answer, "explanation": answer.explanation,
            "spans": [s.model_dump() for s in answer.spans]}]}, as_node="plan")
    return answer


def _turn(planner: Planner, toolbox: Toolbox, question: str, video: str | None, max_steps: int, started: float,
          max_seconds: float, previous: dict[str, Any] | None) -> dict[str, Any]:
    """The graph's input for one turn: this turn's observations, notes and budget start afresh (``Overwrite``
    past the reducers); the messages add to the conversation's, its system prompt already among them."""
    messages = planner.start(question, video, toolbox, max_steps)
    if previous is not None:
        messages = [m for m in messages if not isinstance(m, SystemMessage)]
    return {"question": question, "video": video, "observations": Overwrite([]), "notes": Overwrite([]),
            "results": Overwrite([]),
            "steps": 0, "exhausted": None, "messages": messages, "calls": [], "final": None,
            "deadline": started + max_seconds, "max_seconds": max_seconds, "previous": previous}


def _with_usage(state: dict[str, Any], planner: Planner) -> dict[str, Any]:
    if getattr(planner, "usage", None):  # the LLM planner's calls and tokens, for the trace and benchmarks
        return {**state, "notes": [*state.get("notes", []), {"llm_usage": dict(planner.usage)}]}
    return state


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


COMMON_WORDS = STOP | {"video", "videos"}  # the reader's function words, and what every reply is about


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
    kept, dropped = check_spans(spans, observations + _previous_moments(state.get("previous")), max_support)
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


def _previous_moments(previous: dict[str, Any] | None) -> list[Observation]:
    """The last turn's answer spans, as support for this turn's ("what is shown there?" may cite them)."""
    if not previous or not previous.get("spans"):
        return []
    return [Observation(step=0, tool="previous", args={}, moments=[
        Moment(video=s["video"], start=s["start"], end=s["end"], text=previous.get("explanation", ""))
        for s in previous["spans"]])]


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
