"""The planner's chat model (setting ``llm``), through LangChain's init_chat_model.

A chat model is an API client, not weights, so it lives here beside the LLM
planner rather than in the model registry (``vdisc.index.models``), which
loads weights only. A reference is ``provider:model`` when LangChain knows
the provider (``openai:gpt-4o-mini``, ``anthropic:...``; ``ollama:llama3.1``
goes to Ollama's OpenAI-compatible /v1 unless ``langchain-ollama`` is
installed), else a model name, colons and slashes included (``llama3.1:8b``,
``org/model``), served by the OpenAI-compatible server at
``VDISC_LLM_BASE_URL`` (vLLM, llama.cpp, Ollama's /v1). Nothing is called
unless a model is configured: vdisc never picks a remote API by itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from vdisc.errors import ModelUnavailable
from vdisc.index.models.spec import ModelSpec
from vdisc.index.notices import Notice

SETTING = "VDISC_LLM_MODEL (or --llm)"
ENABLE_HINT = "set VDISC_LLM_MODEL (and VDISC_LLM_BASE_URL for an OpenAI-compatible server)"
OFFLINE_NOTICE = "no LLM configured (set VDISC_LLM_MODEL or --llm); using the offline planner"
OFFLINE_SHORT = "no LLM configured (offline planner)"


@dataclass
class ChatModel:
    spec: ModelSpec
    model: Any  # a LangChain BaseChatModel
    where: str  # endpoint or provider, for messages


def configured(ref: str | None) -> bool:
    """Whether ``ref`` names a chat model (rather than none/off/offline: the offline planner)."""
    return (ref or "").strip().lower() not in ("", "none", "off", "offline")


def offline_notice(ref: str = "none") -> Notice:
    """The notice that no chat model is configured (so the offline planner answers)."""
    return Notice(OFFLINE_NOTICE, "llm", ref, OFFLINE_SHORT)


def endpoint() -> tuple[str | None, str | None]:
    """(base URL, API key) from VDISC_LLM_* falling back to OPENAI_*."""
    base = os.environ.get("VDISC_LLM_BASE_URL") or os.environ.get("OPENAI_BASE_URL") or None
    key = os.environ.get("VDISC_LLM_API_KEY") or os.environ.get("OPENAI_API_KEY") or None
    return base, key


def status(ref: str) -> dict[str, Any]:
    """What ``vdisc info`` shows for the llm setting: ``configured`` (with where) or ``offline``; nothing is called."""
    if not configured(ref):
        return {"ref": ref, "state": "offline"}
    base, _ = endpoint()
    return {"ref": ref, "state": "configured", "where": f"{base} ({ref})" if base else ref}


OLLAMA_URL = "http://127.0.0.1:11434/v1"  # Ollama's OpenAI-compatible endpoint on its default port


def split_ref(ref: str) -> tuple[str, str]:
    """(provider, model) of a reference: ``provider:model`` only when LangChain knows the provider; any other
    name (``llama3.1:8b``, ``qwen2.5:7b-instruct``, ``org/model``) is a model on the OpenAI-compatible server."""
    head, sep, rest = ref.strip().partition(":")
    if sep and head.lower() in known_providers():
        return head.lower(), rest
    return "", ref.strip()


def known_providers() -> frozenset[str]:
    """The providers ``init_chat_model`` accepts by prefix."""
    try:
        from langchain.chat_models import base
    except ImportError:
        return frozenset({"openai", "ollama"})
    return frozenset(getattr(base, "_BUILTIN_PROVIDERS", None) or getattr(base, "_SUPPORTED_PROVIDERS", ())) \
        | {"openai", "ollama"}


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def load(ref: str, temperature: float = 0.0, timeout: float = 60.0) -> ChatModel:
    """The client for ``ref``; builds it only (no request is sent), or ModelUnavailable naming the setting."""
    try:
        from langchain.chat_models import init_chat_model
    except ImportError:
        raise ModelUnavailable("the LLM planner needs langchain: pip install 'vdisc[llm]'") from None
    base, key = endpoint()
    provider, name = split_ref(ref)
    if provider == "ollama" and not _installed("langchain_ollama"):
        # Ollama speaks the OpenAI protocol at /v1: no extra package is needed for it
        provider, base = "", base or OLLAMA_URL
    kwargs: dict[str, Any] = {"temperature": temperature}
    if base:
        kwargs["base_url"] = base
    if base or provider == "openai":
        provider = provider or "openai"
        kwargs["api_key"] = key or "not-needed"  # local servers accept any key; the client insists on one
        kwargs["timeout"] = timeout
        kwargs["max_retries"] = 1
    try:
        model = init_chat_model(name, model_provider=provider or None, **kwargs)
    except ImportError as exc:
        raise ModelUnavailable(f"the LLM provider for {ref!r} is not installed: {str(exc).splitlines()[0]}") from None
    except Exception as exc:  # noqa: BLE001
        raise ModelUnavailable(f"cannot set up LLM {ref!r}: {str(exc).splitlines()[0]}; fix {SETTING}") from None
    spec = ModelSpec(role="llm", ref=ref, model_id=name, revision=base or provider or None, source="setting")
    return ChatModel(spec, model, f"{base} ({ref})" if base else ref)
