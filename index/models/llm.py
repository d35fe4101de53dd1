"""The llm role: a chat model for the planner, through LangChain's init_chat_model.

A reference is ``provider:model`` (``openai:gpt-4o-mini``, ``ollama:llama3.1``)
or a bare model name served by an OpenAI-compatible server at
``VDISC_LLM_BASE_URL`` (vLLM, llama.cpp, Ollama's /v1). Nothing is called
unless a model is configured: vdisc never picks a remote API by itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from vdisc.errors import ModelUnavailable

from .spec import ModelSpec

SETTING = "VDISC_LLM_MODEL (or --llm)"


@dataclass
class ChatModel:
    spec: ModelSpec
    model: Any  # a LangChain BaseChatModel
    where: str  # endpoint or provider, for messages


def endpoint() -> tuple[str | None, str | None]:
    """(base URL, API key) from VDISC_LLM_* falling back to OPENAI_*."""
    base = os.environ.get("VDISC_LLM_BASE_URL") or os.environ.get("OPENAI_BASE_URL") or None
    key = os.environ.get("VDISC_LLM_API_KEY") or os.environ.get("OPENAI_API_KEY") or None
    return base, key


def load(ref: str, temperature: float = 0.0, timeout: float = 60.0) -> ChatModel:
    try:
        from langchain.chat_models import init_chat_model
    except ImportError:
        raise ModelUnavailable("the LLM planner needs langchain: pip install 'vdisc[llm]'") from None
    base, key = endpoint()
    provider, _, name = ref.partition(":") if ":" in ref else ("", "", ref)
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
