"""The LLM planner: any LangChain chat model that can call tools.

The model sees a system prompt (our text only), the user's question, its own
tool calls, and tool results quoted inside <video-data> as tool messages.
Text read from videos therefore only ever reaches it in the tool role,
marked as data. Its final reply is one JSON object (prompts/answer_format).

Budgets: every model call gets the time left of the run (``timeout=`` for
OpenAI-compatible clients, and for any provider a worker thread abandoned at
the deadline); every call is kept under the model's window (``budget.fit``).
The first turn must call a tool: a forced tool choice where the provider has
one ("required"; where the server refuses that, as llama-cpp-python does, the
named tool ``search``), else, or when the reply is still prose, "auto" with a
firm instruction to call one.
"""

from __future__ import annotations

import contextvars
import json
import re
import threading
import time
from typing import Any, Callable

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, SystemMessage

from vdisc import prompts
from vdisc.errors import VdiscError

from .budget import fit, reply_tokens, tokens
from .toolbox import Toolbox


class LLMError(VdiscError):
    """The chat model could not be reached or refused the request."""


class OutOfTime(Exception):
    """A model call would end past the run's deadline; the planner answers from what the tools found."""


class ToolChoiceRejected(Exception):
    """The provider refused a forced tool choice; the first turn is asked again with the next one."""


FIRST_TOOL = "search"  # the tool a first turn is forced to where "any tool" cannot be: it needs only a query


MIN_CALL_SECONDS = 0.25  # less time than this left: no model call is started


class LLMPlanner:
    name = "llm"
    verify_support = True  # a final reply no tool result supports is returned as unsupported (graph.build_answer)

    def __init__(self, model: Any, describe: str = "", replay: Any = None) -> None:
        self.model = model
        self.describe = describe  # for error messages: which model / endpoint
        self.replay = replay  # a ReplayCache: replies keyed by model and the messages sent
        self.forced: list[tuple[str, Any]] = []  # (tool choice, bound model) to try in turn on the first turn
        self.context = 8000  # tokens the model may be sent per call (setting llm_context)
        self.fixed_tokens = 0  # the tool schemas and the room left for the reply, sent or kept every call
        self._summarised = 0
        self.usage: dict[str, Any] = {}  # this run's model calls: how many, tokens, the model the server named

    def start(self, question: str, video: str | None, toolbox: Toolbox, max_steps: int) -> list[AnyMessage]:
        schemas = toolbox.schemas()
        try:
            self.tools_model = self.model.bind_tools(schemas)
        except NotImplementedError:
            raise LLMError(f"the chat model {self.describe} cannot call tools; use one that can, "
                           "or the offline planner (--llm offline)") from None
        # "required" is the OpenAI protocol's word (vLLM, llama.cpp, Ollama's /v1); LangChain's other
        # providers take "any" for the same thing
        self.forced = []
        for choice in ("required" if openai_compatible(self.model) else "any", FIRST_TOOL):
            try:
                self.forced.append((choice, self.model.bind_tools(schemas, tool_choice=choice)))
            except Exception:  # noqa: BLE001 - no such forced choice here: the next one, or a firm instruction
                continue
        self.context = toolbox.context_tokens
        self.fixed_tokens = tokens(json.dumps(schemas, ensure_ascii=False)) + reply_tokens(self.context)
        self._summarised = 0
        self.usage = {"model_calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "served_model": None}
        with toolbox.ctx.store.session() as s:
            from sqlalchemy import func, select

            from vdisc.index.store import VISIBLE_STATUSES, Video

            n_videos = s.scalar(select(func.count()).select_from(Video)
                                .where(Video.status.in_(VISIBLE_STATUSES))) or 0
        scope = f"questions are about the video {video}" if video else "questions may concern any of them"
        if toolbox.last is not None:
            scope += (f"; only the final {toolbox.last:g} seconds of each video count, and search is limited "
                      "to them")
        system = prompts.render(
            "planner_system", n_videos=n_videos, scope=scope, max_steps=max_steps,
            tool_guidance=prompts.render("tool_guidance"), answer_format=prompts.render("answer_format"),
        )
        return [SystemMessage(content=system), HumanMessage(content=question)]

    def plan(self, state: dict[str, Any], must_answer: str | None) -> dict[str, Any]:
        deadline = state.get("deadline")
        observations = state.get("observations", [])
        messages, summarised = fit(list(state["messages"]), observations, self.context - self.fixed_tokens)
        notes: list[dict[str, Any]] = []
        if summarised > self._summarised:
            notes.append({"context": f"{summarised} older tool result(s) summarised (moments kept) to stay under "
                                     f"{self.context} tokens"})
            self._summarised = summarised
        try:
            if must_answer:
                note = HumanMessage(content=prompts.render("budget_exhausted", reason=must_answer))
                reply = self._invoke(self.model, [*messages, note], deadline, "answer")
                if getattr(reply, "tool_calls", None):  # still wants tools: the graph answers from observations
                    return {"messages": [note, reply], "trace": notes}
                return {"messages": [note, reply], "final": parse_final(reply), "trace": notes}
            first = not observations  # no tool has run: the model knows nothing about the videos yet
            reply = None
            while first and reply is None and self.forced:
                choice, forced = self.forced[0]
                try:
                    reply = self._invoke(forced, messages, deadline, "required" if choice in ("required", "any")
                                         else f"tool:{choice}")
                except ToolChoiceRejected as exc:
                    self.forced.pop(0)  # this server will not take it: not asked again in this run
                    notes.append({"tool_choice": f"the model refused tool_choice {choice} ({exc})"})
            if first and not getattr(reply, "tool_calls", None):
                if reply is not None:
                    notes.append({"tool_choice": "the first reply called no tool; asked again with an "
                                                 "instruction to call one"})
                note = HumanMessage(content=prompts.render("call_a_tool"))
                reply = self._invoke(self.tools_model, [*messages, note], deadline, "tools")
            elif reply is None:
                reply = self._invoke(self.tools_model, messages, deadline, "tools")
        except OutOfTime as exc:
            return {"exhausted": f"the {float(state.get('max_seconds') or 0):g} s time budget",
                    "trace": [*notes, {"timeout": str(exc)}]}
        calls = [{"id": c.get("id") or f"call_{i}", "name": c["name"], "args": c.get("args") or {}}
                 for i, c in enumerate(getattr(reply, "tool_calls", None) or [])]
        if calls:
            return {"messages": [reply], "calls": calls, "trace": notes}
        return {"messages": [reply], "final": parse_final(reply), "trace": notes}

    def _invoke(self, model: Any, messages: list[AnyMessage], deadline: float | None = None,
                kind: str = "tools") -> AIMessage:
        """One model call, bounded by ``deadline``. ``kind``: tools | answer | required | tool:NAME (forced)."""
        from langchain_core.messages import message_to_dict, messages_from_dict

        key = None
        if self.replay is not None:
            # True/False as before forced tool choice, so older replay files still answer the later turns
            which = {"tools": True, "answer": False}.get(kind, kind)
            key = self.replay.key("llm", self.describe, which, [_content(m) for m in messages])
            cached = self.replay.get(key)
            if isinstance(cached, dict) and "refused" in cached:  # a forced tool choice the server refused
                raise ToolChoiceRejected(str(cached["refused"]))
            if cached is not None:
                reply = messages_from_dict([cached])[0]
                self._count(reply)
                return reply
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left < MIN_CALL_SECONDS:
            raise OutOfTime("no time was left for another model call")
        # the client's own timeout closes the request; the worker thread bounds providers without one
        kwargs: dict[str, Any] = {}
        if openai_compatible(model):
            messages = sendable(messages)
            # the reply's share of the window: a server left unbounded (llama.cpp's tool-calling format
            # sends none) may otherwise generate until the context is full, long after we gave up
            kwargs["max_tokens"] = reply_tokens(self.context)
            if left is not None:
                kwargs["timeout"] = left
        try:
            reply = within(lambda: model.invoke(messages, **kwargs), left)
        except OutOfTime:
            raise
        except Exception as exc:  # noqa: BLE001 - provider errors differ; classify by text
            if timed_out(exc):
                raise OutOfTime(f"the chat model did not reply within {left or 0:.1f} s") from None
            if kind not in ("tools", "answer") and rejects_choice(exc):
                why = " ".join(str(exc).split())[:160]
                if key is not None:  # a replay must take the same path without asking the server again
                    self.replay.put(key, {"refused": why})
                raise ToolChoiceRejected(why) from None
            raise LLMError(explain(exc, self.describe)) from None
        if key is not None:
            self.replay.put(key, message_to_dict(reply))
        self._count(reply)
        return reply

    def _count(self, reply: Any) -> None:
        used = getattr(reply, "usage_metadata", None) or {}
        self.usage["model_calls"] = self.usage.get("model_calls", 0) + 1
        self.usage["prompt_tokens"] = self.usage.get("prompt_tokens", 0) + int(used.get("input_tokens") or 0)
        self.usage["completion_tokens"] = (self.usage.get("completion_tokens", 0)
                                           + int(used.get("output_tokens") or 0))
        served = (getattr(reply, "response_metadata", None) or {}).get("model_name")
        if served:
            self.usage["served_model"] = served


def within(call: Callable[[], Any], seconds: float | None) -> Any:
    """``call()``, or OutOfTime after ``seconds``: it runs in a daemon thread that is abandoned when late
    (it cannot be killed; its reply is ignored, and a daemon thread never holds up the process's exit)."""
    if seconds is None:
        return call()
    box: dict[str, Any] = {}
    done = threading.Event()
    context = contextvars.copy_context()  # LangChain's callbacks and LangGraph's config live in context vars

    def work() -> None:
        try:
            box["value"] = context.run(call)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=work, name="vdisc-llm-call", daemon=True).start()
    if not done.wait(max(seconds, 0.0)):
        raise OutOfTime(f"the chat model did not reply within {seconds:.1f} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def sendable(messages: list[AnyMessage]) -> list[AnyMessage]:
    """``messages`` as every OpenAI-compatible server takes them: an assistant turn that only called tools
    gets a blank content (the client sends ``null``, which OpenAI allows and llama-cpp-python's server
    rejects with HTTP 500)."""
    return [m.model_copy(update={"content": " "}) if isinstance(m, AIMessage) and m.tool_calls and not m.content
            else m for m in messages]


def openai_compatible(model: Any) -> bool:
    """Whether ``model`` (or the model a binding wraps) is LangChain's OpenAI client (OpenAI, vLLM,
    llama.cpp, Ollama's /v1): it takes ``timeout=`` per call and ``tool_choice="required"``."""
    while hasattr(model, "bound"):
        model = model.bound
    try:
        from langchain_openai.chat_models.base import BaseChatOpenAI
    except ImportError:
        return False
    return isinstance(model, BaseChatOpenAI)


def timed_out(exc: BaseException) -> bool:
    return isinstance(exc, TimeoutError) or "timeout" in type(exc).__name__.lower() or \
        "timed out" in str(exc).lower()


def _status(exc: BaseException) -> int | None:
    code = getattr(exc, "status_code", None) or getattr(getattr(exc, "response", None), "status_code", None)
    return code if isinstance(code, int) else None


def rejects_choice(exc: BaseException) -> bool:
    """Whether a failed forced-tool-choice request is worth asking again with "auto": the server
    answered (not a connection, key or model problem) and did not say that "auto" is off too."""
    low = " ".join(str(exc).split()).lower()
    name = type(exc).__name__
    if "connect" in low or name in ("APIConnectionError", "ConnectError", "ConnectionError"):
        return False
    if _status(exc) in (401, 403, 404) or "api key" in low or "unauthorized" in low:
        return False
    return not ('"auto" tool choice' in low or "enable-auto-tool-choice" in low)


def _content(message: AnyMessage) -> list[Any]:
    """What a message says, without the random ids the graph gives messages (for replay keys)."""
    calls = [(c["name"], c.get("args")) for c in getattr(message, "tool_calls", None) or []]
    return [message.type, message.content, calls, getattr(message, "tool_call_id", None)]


def parse_final(reply: Any) -> dict[str, Any]:
    """The answer object in a final reply; plain prose becomes an answer with no spans.

    A reply without an "explanation" (the format before short answers) still parses: its answer
    explains itself."""
    text = reply.content if isinstance(reply.content, str) else " ".join(
        part.get("text", "") for part in reply.content if isinstance(part, dict))
    decoder = json.JSONDecoder()
    for brace in (m.start() for m in re.finditer(r"\{", text)):  # the first object that parses and has an answer
        try:
            obj, _ = decoder.raw_decode(text, brace)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and "answer" in obj:
            return {**obj, "explanation": str(obj.get("explanation") or "").strip() or str(obj["answer"])}
    return {"answer": text.strip(), "explanation": text.strip(), "spans": [], "evidence": []}


def explain(exc: Exception, where: str) -> str:
    """One actionable line for a chat-model failure."""
    msg = " ".join(str(exc).split())
    low = msg.lower()
    name = type(exc).__name__
    if "connect" in low or name in ("APIConnectionError", "ConnectError", "ConnectionError"):
        return f"cannot reach the LLM at {where}: is the server running? (check VDISC_LLM_BASE_URL)"
    if "tool" in low and ("choice" in low or "not support" in low or "enable" in low):
        return (f"the LLM server at {where} does not accept tool calls; for vLLM start it with "
                "--enable-auto-tool-choice --tool-call-parser <parser> (e.g. hermes), for Ollama use a model "
                "with tool support")
    if "401" in msg or "unauthorized" in low or "api key" in low:
        return f"the LLM at {where} rejected the API key; set VDISC_LLM_API_KEY (or OPENAI_API_KEY)"
    if "404" in msg or "not found" in low:
        return f"the LLM at {where} does not know this model; check VDISC_LLM_MODEL / --llm"
    return f"the LLM at {where} failed: {name}: {msg[:200]}"
