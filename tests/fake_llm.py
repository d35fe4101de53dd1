"""A scripted LangChain chat model for driving the real agent graph in tests.

``ScriptedChatModel(script=[...])`` answers its n-th invocation with the n-th
entry of ``script``: an ``AIMessage`` (copied, so ids never repeat) or a
callable ``f(messages) -> AIMessage`` that can read the tool results the graph
sent back. It records every list of messages it is invoked with (``calls``),
every tool list it is bound to (``bound_tools``) and the tool choice of each
binding (``tool_choices``: None for the default, "auto").
"""

from __future__ import annotations

import json
import re
from itertools import count
from typing import Any, Callable

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import Field

Step = AIMessage | Callable[[list[BaseMessage]], AIMessage]

_ids = count(1)
VIDEO_DATA = re.compile(r'^<video-data tool="(?P<tool>[^"]+)" step="(?P<step>\d+)">\n(?P<body>.*)\n</video-data>$',
                        re.DOTALL)


class ScriptedChatModel(BaseChatModel):
    script: list[Any]
    repeat_last: bool = False  # past the end of the script, keep playing its last entry
    calls: list[list[BaseMessage]] = Field(default_factory=list)
    bound_tools: list[list[Any]] = Field(default_factory=list)
    tool_choices: list[Any] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "scripted-test-model"

    def bind_tools(self, tools: Any, **kwargs: Any) -> "ScriptedChatModel":
        self.bound_tools.append(list(tools))
        self.tool_choices.append(kwargs.get("tool_choice"))
        return self

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        self.calls.append(list(messages))
        n = len(self.calls) - 1
        if n >= len(self.script):
            if not self.repeat_last:
                raise AssertionError(f"the scripted model was invoked {n + 1} times; its script has {len(self.script)}")
            n = len(self.script) - 1
        step = self.script[n]
        msg = step(list(messages)) if callable(step) else step.model_copy(deep=True)
        return ChatResult(generations=[ChatGeneration(message=msg)])


def call(name: str, args: dict[str, Any], id: str | None = None) -> AIMessage:
    """An assistant message asking for one tool call."""
    return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": id or f"call_{next(_ids)}"}])


def calls(*pairs: tuple[str, dict[str, Any]]) -> AIMessage:
    """An assistant message asking for several tool calls at once."""
    return AIMessage(content="", tool_calls=[{"name": n, "args": a, "id": f"call_{next(_ids)}"} for n, a in pairs])


def final(answer: str, spans: list[dict[str, Any]], evidence: list[int]) -> AIMessage:
    """A final reply in the answer format (prompts/answer_format.md)."""
    return AIMessage(content=json.dumps({"answer": answer, "spans": spans, "evidence": evidence}))


def tool_data(message: BaseMessage) -> tuple[str, int, dict[str, Any]]:
    """(tool, step, body) of a ToolMessage's <video-data> content."""
    m = VIDEO_DATA.match(str(message.content))
    assert m, f"not a <video-data> block: {str(message.content)[:200]!r}"
    return m["tool"], int(m["step"]), json.loads(m["body"])


def last_result(messages: list[BaseMessage], tool: str) -> tuple[int, dict[str, Any]]:
    """(step, body) of the latest tool message from ``tool`` in ``messages``."""
    for msg in reversed(messages):
        if isinstance(msg, ToolMessage):
            name, step, body = tool_data(msg)
            if name == tool:
                return step, body
    raise AssertionError(f"no {tool} result among the messages")
