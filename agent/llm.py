"""The LLM planner: any LangChain chat model that can call tools.

The model sees a system prompt (our text only), the user's question, its own
tool calls, and tool results quoted inside <video-data> as tool messages.
Text read from videos therefore only ever reaches it in the tool role,
marked as data. Its final reply is one JSON object (prompts/answer_format).
"""

from __future__ import annotations

import json
import re
from typing import Any

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, SystemMessage

from vdisc import prompts
from vdisc.errors import VdiscError

from .toolbox import Toolbox


class LLMError(VdiscError):
    """The chat model could not be reached or refused the request."""


class LLMPlanner:
    name = "llm"

    def __init__(self, model: Any, describe: str = "", replay: Any = None) -> None:
        self.model = model
        self.describe = describe  # for error messages: which model / endpoint
        self.replay = replay  # a ReplayCache: replies keyed by model and the messages sent

    def start(self, question: str, video: str | None, toolbox: Toolbox, max_steps: int) -> list[AnyMessage]:
        try:
            self.tools_model = self.model.bind_tools(toolbox.schemas())
        except NotImplementedError:
            raise LLMError(f"the chat model {self.describe} cannot call tools; use one that can, "
                           "or the offline planner (--llm offline)") from None
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
        messages = list(state["messages"])
        if must_answer:
            note = HumanMessage(content=prompts.render("budget_exhausted", reason=must_answer))
            reply = self._invoke(self.model, [*messages, note])
            if getattr(reply, "tool_calls", None):  # still wants tools: the graph answers from observations
                return {"messages": [note, reply]}
            return {"messages": [note, reply], "final": parse_final(reply)}
        reply = self._invoke(self.tools_model, messages)
        calls = [{"id": c.get("id") or f"call_{i}", "name": c["name"], "args": c.get("args") or {}}
                 for i, c in enumerate(getattr(reply, "tool_calls", None) or [])]
        if calls:
            return {"messages": [reply], "calls": calls}
        return {"messages": [reply], "final": parse_final(reply)}

    def _invoke(self, model: Any, messages: list[AnyMessage]) -> AIMessage:
        from langchain_core.messages import message_to_dict, messages_from_dict

        key = None
        if self.replay is not None:
            key = self.replay.key("llm", self.describe, model is self.tools_model, [_content(m) for m in messages])
            cached = self.replay.get(key)
            if cached is not None:
                return messages_from_dict([cached])[0]
        try:
            reply = model.invoke(messages)
        except Exception as exc:  # noqa: BLE001 - provider errors differ; classify by text
            raise LLMError(explain(exc, self.describe)) from None
        if key is not None:
            self.replay.put(key, message_to_dict(reply))
        return reply


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
