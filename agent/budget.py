"""Context budgets for the LLM planner: what a chat model is sent stays under its window.

Two bounds (setting ``llm_context``, ``VDISC_LLM_CONTEXT``, in tokens):

- each tool result is cut to ``observation_tokens(context)`` before it becomes a tool message: its
  longest lists (hits, videos, scenes, words) are shortened, best-ranked items kept, then long strings;
  the cut is said inside the result (a ``"cut"`` field) so the model knows to narrow its next call;
- before each call, if the whole conversation would not fit, older tool messages are replaced, oldest
  first, by a summary that keeps the moments they found (video, start, end, a few words).

Tokens are estimated from characters (a digit a token, the rest at ``CHARS_PER_TOKEN``) rather than
counted with the model's tokenizer, which vdisc does not have for an arbitrary server; the rates are
chosen so that JSON full of times and scores, which tokenizes worse than prose, is not underestimated.
"""

from __future__ import annotations

import json
import math
from typing import Any

from langchain_core.messages import AnyMessage, ToolMessage

from .answer import Observation

# Measured with SmolLM2's tokenizer: 3.8 characters a token for the system prompt, 3.5 for the tool
# schemas, 2.5 for search hits, and a digit is a token of its own (a summarised tool message, nearly
# all times, runs at 1.8 characters a token). So digits count one each and the rest at the lowest rate:
# prose is overestimated by half, which costs room, not a window overflow.
CHARS_PER_TOKEN = 2.5
MESSAGE_OVERHEAD = 8  # tokens a chat template adds around each message (role markers, separators)
SUMMARY_MOMENTS = 12  # most moments a summarised tool message keeps
SNIPPET_CHARS = 60  # words kept per moment in a summary


def tokens(text: str) -> int:
    """An estimate of how many tokens ``text`` is for a chat model (never under, for the texts measured)."""
    digits = sum(c.isdigit() for c in text)
    return digits + math.ceil((len(text) - digits) / CHARS_PER_TOKEN)


def observation_tokens(context: int) -> int:
    """The most tokens one tool result may take: a quarter of the window, so a few results and the prompt fit."""
    return max(256, context // 4)


def reply_tokens(context: int) -> int:
    """Tokens left free for the model's reply (a server's window holds the prompt and the reply)."""
    return max(256, context // 8)


def message_tokens(messages: list[AnyMessage]) -> int:
    total = 0
    for m in messages:
        content = m.content if isinstance(m.content, str) else json.dumps(m.content, ensure_ascii=False)
        calls = getattr(m, "tool_calls", None) or []
        total += tokens(content) + MESSAGE_OVERHEAD
        if calls:
            total += tokens(json.dumps([[c["name"], c.get("args")] for c in calls], ensure_ascii=False))
    return total


def _dumps(body: Any) -> str:
    return json.dumps(body, ensure_ascii=False)


def _lists(node: Any, path: str = "") -> list[tuple[str, Any, str | int, list[Any]]]:
    """Every list in ``node`` with more than one item: (path, parent, key, list)."""
    out: list[tuple[str, Any, str | int, list[Any]]] = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        here = f"{path}.{key}" if isinstance(key, str) else f"{path}[{key}]"
        if isinstance(value, list):
            if len(value) > 1:
                out.append((here.lstrip("."), node, key, value))
            out += _lists(value, here)
        elif isinstance(value, dict):
            out += _lists(value, here)
    return out


def _strings(node: Any) -> list[tuple[Any, str | int, str]]:
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    out: list[tuple[Any, str | int, str]] = []
    for key, value in items:
        if isinstance(value, str):
            out.append((node, key, value))
        elif isinstance(value, (dict, list)):
            out += _strings(value)
    return out


def cut(body: dict[str, Any], max_tokens: int) -> dict[str, Any]:
    """``body`` (a tool result) made to fit ``max_tokens``, with a ``"cut"`` field saying what was left out.

    Lists keep their first items (tools return the best first), the list with the most text shrinking
    first; then the longest strings are shortened. A body that fits is returned as it is."""
    limit = max_tokens - 80  # room for the note itself
    if tokens(_dumps(body)) <= max_tokens:
        return body
    body = json.loads(_dumps(body))  # a copy to cut
    shortened: dict[str, tuple[int, int]] = {}  # path -> (items before, items kept)
    for _ in range(400):  # each round shrinks one list or string; bounded so a pathological body ends
        size = tokens(_dumps(body))
        if size <= limit:
            break
        lists = _lists(body)
        if lists:
            path, parent, key, items = max(lists, key=lambda x: len(_dumps(x[3])))
            keep = max(1, min(len(items) - 1, math.floor(len(items) * limit / size)))
            before = shortened.get(path, (len(items), 0))[0]
            parent[key] = items[:keep]
            shortened[path] = (before, keep)
            continue
        strings = _strings(body)
        if not strings:
            break
        parent, key, text = max(strings, key=lambda x: len(x[2]))
        if len(text) <= 40:
            break
        parent[key] = text[: max(40, len(text) - (size - limit) - 1)] + "…"  # a token is a character or more
        shortened.setdefault("long texts", (0, 0))
    parts = [f"{p} {n} of {total} kept" if total else "long texts shortened"
             for p, (total, n) in shortened.items()]
    body["cut"] = (f"this result was cut to fit {max_tokens} tokens ({'; '.join(parts)}); "
                   "ask for less (a video, a page, a smaller top_k or window) to see the rest")
    if tokens(_dumps(body)) > max_tokens:  # still too long (one huge scalar): plain text, cut
        text = _dumps(body)[: max(0, limit)]  # no token is shorter than a character
        body = {"cut": f"this result was cut to fit {max_tokens} tokens", "text": text}
    return body


def summary(obs: Observation, detail: bool = True) -> dict[str, Any]:
    """What an older tool result is shortened to: its moments (video, start, end; a few words when ``detail``)."""
    if obs.error:
        return {"error": obs.error[:200]}
    fine = [m for m in obs.moments if m.fine]
    out: dict[str, Any] = {"summarised": "an earlier result, shortened to fit the context; its moments are kept"}
    if fine:
        out["moments"] = [{"video": m.video, "start": m.start, "end": m.end,
                           **({"text": m.text[:SNIPPET_CHARS]} if detail and m.text else {})}
                          for m in fine[:SUMMARY_MOMENTS]]
        if len(fine) > SUMMARY_MOMENTS:
            out["more_moments"] = len(fine) - SUMMARY_MOMENTS
    videos = sorted({m.video for m in obs.moments})
    if videos and not fine:  # an overview (browse): which videos it covered
        out["videos"] = videos[:SUMMARY_MOMENTS * 2]
    return out


def fit(messages: list[AnyMessage], observations: list[Observation], budget: int) -> tuple[list[AnyMessage], int]:
    """``messages`` with older tool results summarised until they fit ``budget`` tokens: (messages, summarised).

    The newest tool message stays whole; the moments of every summarised one stay in it. Messages are
    never dropped, so every tool call keeps its tool message (providers require the pair)."""
    from .toolbox import as_data

    if message_tokens(messages) <= budget:
        return messages, 0
    by_step = {o.step: o for o in observations}
    out = list(messages)
    tool_at = [i for i, m in enumerate(out) if isinstance(m, ToolMessage)][:-1]
    done: set[int] = set()
    for detail in (True, False):  # first with a few words per moment, then bare moments
        for i in tool_at:
            if message_tokens(out) <= budget:
                return out, len(done)
            m = out[i]
            obs = by_step.get(_step(m))
            if obs is None:
                continue
            short = Observation(step=obs.step, tool=obs.tool, args=obs.args, result=summary(obs, detail))
            out[i] = ToolMessage(content=as_data(short), tool_call_id=m.tool_call_id, name=m.name)
            done.add(i)
    return out, len(done)


def _step(message: ToolMessage) -> int | None:
    head = str(message.content)[:80]
    marker = 'step="'
    at = head.find(marker)
    if at < 0:
        return None
    digits = head[at + len(marker):].split('"', 1)[0]
    return int(digits) if digits.isdigit() else None
