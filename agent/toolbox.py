"""The tools as the agent sees them, wrapped once from the plain functions in ``vdisc.tools``.

A tool's docstring is its description; its typed signature (minus the
context) is its argument schema. Running a tool never raises: an error
becomes an observation the planner reads.
"""

from __future__ import annotations

import inspect as pyinspect
import json
import time
from typing import Any, Callable, get_type_hints

from pydantic import BaseModel, ValidationError, create_model

from vdisc.tools.browse import browse
from vdisc.tools.context import ToolContext
from vdisc.tools.ground import ground
from vdisc.tools.search import search
from vdisc.tools.zoom import inspect

from .answer import Moment, Observation

OVERVIEW_LEVELS = frozenset({"video", "day", "hour"})  # hits that say where to look, not when
TOOLS: dict[str, Callable[..., BaseModel]] = {"browse": browse, "search": search, "inspect": inspect, "ground": ground}


def _args_model(name: str, fn: Callable[..., Any]) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    # resolved in the tool's module (Literal and friends), with their Field descriptions and bounds
    hints = get_type_hints(fn, include_extras=True)
    for p in list(pyinspect.signature(fn).parameters.values())[1:]:  # skip ctx
        default = ... if p.default is pyinspect.Parameter.empty else p.default
        fields[p.name] = (hints.get(p.name, p.annotation), default)
    return create_model(f"{name.title()}Args", **fields)


def _description(fn: Callable[..., Any]) -> str:
    return " ".join((pyinspect.getdoc(fn) or "").split("\n\n")[0].split())


class Toolbox:
    """Runs tools by name for one library and scope; emits observations."""

    def __init__(self, ctx: ToolContext, video: str | None = None, replay: Any = None,
                 last: float | None = None) -> None:
        self.ctx = ctx
        self.video = video  # an ask scoped to one video pins every tool to it
        self.last = last  # an ask about the final seconds of each video caps every tool's `last` to it
        self.replay = replay  # a ReplayCache: tool results keyed by library state, models, tool and arguments
        self.models = {name: _args_model(name, fn) for name, fn in TOOLS.items()}

    @property
    def context_tokens(self) -> int:
        """The chat model's window the planner keeps under (setting ``llm_context``)."""
        return int(getattr(getattr(self.ctx, "settings", None), "llm_context", 8000))

    def schemas(self, strict: bool = False) -> list[dict[str, Any]]:
        """OpenAI-style function schemas, for chat models that call tools.

        Only the portable subset of JSON Schema: objects, arrays with ``items``
        (no tuples), enums for closed sets, a description on every argument.
        ``strict``: the form providers' strict modes take: every argument
        required, optional ones nullable (``anyOf [T, null]``; null means the
        default), no ``default``, no extra properties.
        """
        out = []
        for name, fn in TOOLS.items():
            params = portable(self.models[name].model_json_schema())
            if strict:
                params = strict_schema(params)
            fn_schema: dict[str, Any] = {"name": name, "description": _description(fn), "parameters": params}
            if strict:
                fn_schema["strict"] = True
            out.append({"type": "function", "function": fn_schema})
        return out

    def run(self, step: int, name: str, args: dict[str, Any]) -> Observation:
        t0 = time.monotonic()
        obs = Observation(step=step, tool=name, args=dict(args))
        try:
            if name not in TOOLS:
                raise ValueError(f"unknown tool {name!r}; tools are {', '.join(TOOLS)}")
            if self.video is not None and "video" in self.models[name].model_fields:
                args = {**args, "video": self.video}
            if self.last is not None and "last" in self.models[name].model_fields:
                given = args.get("last")
                args = {**args, "last": self.last if given is None else min(float(given), self.last)}
            fields = self.models[name].model_fields
            # a strict schema makes every argument required: null stands for "the default"
            args = {k: v for k, v in args.items() if v is not None or k not in fields or fields[k].default is None}
            obs.args = dict(args)  # the trace shows what ran, scope included
            parsed = self.models[name](**args)
            key = self.replay.key("tool", self._state(), name, parsed.model_dump()) if self.replay else None
            cached = self.replay.get(key) if key else None
            if cached is not None:
                obs.result = cached
            else:
                result = TOOLS[name](self.ctx, **{k: getattr(parsed, k) for k in type(parsed).model_fields})
                obs.result = result.model_dump()
                if key:
                    self.replay.put(key, obs.result)
            obs.moments = moments_of(name, obs.result)
        except ValidationError as exc:
            obs.error = f"bad arguments for {name}: " + "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        except Exception as exc:  # noqa: BLE001 - tool failures are observations, never crashes
            obs.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        obs.seconds = round(time.monotonic() - t0, 3)
        return obs


    def _state(self) -> list[Any]:
        """What a tool result depends on besides its arguments: the videos (by content) and the models."""
        from sqlalchemy import select

        from vdisc.index.store import VISIBLE_STATUSES, Video

        with self.ctx.store.session() as s:
            # a live video changes as it grows: its results are only as fresh as its duration
            videos = sorted(fp if status == "done" else f"{fp}@{dur:.3f}" for fp, dur, status in s.execute(
                select(Video.fingerprint, Video.duration, Video.status).where(Video.status.in_(VISIBLE_STATUSES))))
        models = [getattr(self.ctx.registry.spec(r), "key", None) for r in ("visual", "text", "ocr", "caption")]
        return [videos, models, self.ctx.settings.compressor]


def portable(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` without pydantic's titles (noise to a model) and with the top level an object."""
    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items() if k != "title"}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    out = walk(schema)
    out.setdefault("properties", {})
    return out


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The strict-mode form of a portable object schema (see ``Toolbox.schemas``)."""
    props: dict[str, Any] = {}
    for key, prop in schema["properties"].items():
        prop = {k: v for k, v in prop.items() if k != "default"}
        if key not in schema.get("required", []) and not any(o.get("type") == "null" for o in prop.get("anyOf", [])):
            inner = {k: v for k, v in prop.items() if k != "description"}
            prop = {"anyOf": [inner, {"type": "null"}], "description": prop.get("description", "")}
        props[key] = prop
    return {"type": "object", "properties": props, "required": list(props), "additionalProperties": False}


def moments_of(tool: str, result: dict[str, Any]) -> list[Moment]:
    """The timed things in a tool result: what answer spans may cite."""
    if tool == "search":
        return [Moment(video=h["video"], start=h["start"], end=h["end"], text=h["snippet"], score=h["score"],
                       fine=h["level"] not in OVERVIEW_LEVELS) for h in result["hits"]]
    if tool == "inspect":
        v = result["video"]
        out = [Moment(video=v, start=result["best_start"], end=result["best_end"], score=result["confidence"],
                      text=f"best sub-window ({result['source']})"),
               Moment(video=v, start=result["start"], end=result["end"], text="inspected window")]
        out += [Moment(video=v, start=x["start"], end=x["end"], text=x["text"], score=x["score"])
                for x in result["spoken"] + result["shown"]]
        return out
    if tool == "ground":
        return [Moment(video=result["video"], start=result["start"], end=result["end"],
                       text=result["evidence"] or result["source"], score=result["confidence"])]
    if tool == "browse":
        return [Moment(video=v["video"], start=s["start"], end=s["end"], text=s["said"] or s["shown"] or s["seen"],
                       fine=False) for v in result["videos"] for s in v["scenes"]]
    return []


def as_data(obs: Observation, max_tokens: int | None = None) -> str:
    """An observation as the chat model sees it: quoted, marked as video content; at most about
    ``max_tokens`` tokens (a longer result is cut, and says so: ``budget.cut``)."""
    body = {"error": obs.error} if obs.error else obs.result
    if max_tokens is not None and isinstance(body, dict):
        from .budget import cut

        body = cut(body, max_tokens)
    return (f'<video-data tool="{obs.tool}" step="{obs.step}">\n'
            f"{json.dumps(body, ensure_ascii=False)}\n</video-data>")
