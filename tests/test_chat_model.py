"""Any model name reaches the configured OpenAI-compatible server; provider prefixes only when LangChain knows them."""

from __future__ import annotations

import json

import pytest

from vdisc.agent.chat_model import OLLAMA_URL, load, split_ref

import test_agent_llm
from test_agent_llm import FakeOpenAI, _completion

llm_env, open_lib = test_agent_llm.llm_env, test_agent_llm.open_lib  # the fixtures, shared


@pytest.mark.parametrize("ref, want", [
    ("llama3.1:8b", ("", "llama3.1:8b")),            # an Ollama tag, not a provider
    ("qwen2.5:7b-instruct", ("", "qwen2.5:7b-instruct")),
    ("org/model", ("", "org/model")),
    ("openai:gpt-4o-mini", ("openai", "gpt-4o-mini")),
    ("Anthropic:claude-x", ("anthropic", "claude-x")),
])
def test_a_reference_is_split_only_at_a_known_provider(ref, want):
    assert split_ref(ref) == want


def test_ollama_needs_no_extra_package(monkeypatch):
    import importlib.util

    monkeypatch.delenv("VDISC_LLM_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    if importlib.util.find_spec("langchain_ollama") is not None:
        pytest.skip("langchain-ollama is installed: ollama: goes through it")
    chat = load("ollama:llama3.1")
    assert chat.model.model_name == "llama3.1" and chat.model.openai_api_base == OLLAMA_URL


def test_a_model_name_with_a_colon_reaches_the_server_as_it_is(talk_library, open_lib, llm_env, monkeypatch):
    home, _ = talk_library
    final = json.dumps({"answer": "not found", "spans": [], "evidence": []})
    with FakeOpenAI([lambda body: _completion({"content": final}, "stop")] * 3) as server:
        llm_env(server.base_url)
        monkeypatch.setenv("VDISC_LLM_MODEL", "llama3.1:8b")
        answer = open_lib(home).ask("when does the keeper catch the ball?")
    assert server.requests and {r["body"]["model"] for r in server.requests} == {"llama3.1:8b"}
    assert answer.planner == "llm"


def test_a_configured_model_that_cannot_be_set_up_is_an_error_not_another_planner(talk_library, tmp_path):
    import importlib.util

    from test_cli import vdisc

    if importlib.util.find_spec("langchain_anthropic") is not None:
        pytest.skip("langchain-anthropic is installed here")
    home, _ = talk_library
    r = vdisc("ask", "when is rain expected?", "--library", str(home), env={"VDISC_LLM_MODEL": "anthropic:claude-x"})
    assert r.returncode == 1 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vdisc: ") and "anthropic:claude-x" in lines[0], r.stderr
    r = vdisc("ask", "when is rain expected?", "--library", str(home), "--llm", "offline",
              env={"VDISC_LLM_MODEL": "anthropic:claude-x"})
    assert r.returncode == 0 and "offline planner" in r.stderr
