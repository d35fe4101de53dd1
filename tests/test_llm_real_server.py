"""`vdisc ask --llm` against a real OpenAI-compatible server: llama.cpp with SmolLM2-135M (issue 14, part 7).

A 135M model plans badly, so nothing here judges the answer: the tests assert the protocol. The first
turn is a real tool call, parsed from the server's reply and executed against the library; the final
reply is parsed, or the run falls back cleanly; the budgets hold; nothing prints a traceback; the
exit code is 0 (an answer, even "not found", is a successful ask). A model name with a colon
(``llama3.1:8b``, an Ollama tag) reaches the server as it is. Skips, saying why, where
llama-cpp-python[server] or the GGUF is not installed.
"""

from __future__ import annotations

import json
import re
import time

import llama_server as llama_server_module
from test_cli import vdisc

llama_server = llama_server_module.llama_server  # the session fixture, shared by assignment

TOOL_NAMES = {"browse", "search", "inspect", "ground"}
QUESTION = "When does the goalkeeper catch the ball?"
MAX_STEPS = 3
BUDGET = 120.0  # Library.ask's default wall clock, which the CLI uses


def _env(server) -> dict[str, str]:
    return {"VDISC_LLM_BASE_URL": server.base_url, "VDISC_LLM_API_KEY": "none", "NO_PROXY": "127.0.0.1,localhost",
            "OPENAI_API_KEY": "", "OPENAI_BASE_URL": ""}


def test_vdisc_ask_llm_makes_real_tool_calls(talk_library, llama_server):
    home, _ = talk_library
    t0 = time.monotonic()
    r = vdisc("ask", QUESTION, "--library", str(home), "--llm", "llama3.1:8b", "--max-steps", str(MAX_STEPS),
              "--json", "--trace", env=_env(llama_server), timeout=BUDGET + 60)
    took = time.monotonic() - t0
    print(f"real server ask: {took:.1f} s; stderr: {r.stderr.strip()[-600:]}")
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:], llama_server.tail())
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout
    answer = json.loads(r.stdout)
    assert answer["planner"] == "llm"

    # the required first turn: at least one tool call came back from the server, was parsed and was run
    steps = [t for t in answer["trace"] if "tool" in t]
    assert steps and 1 <= answer["steps"] <= MAX_STEPS, answer["trace"]
    assert steps[0]["step"] == 1
    assert "[1] " in r.stderr  # --trace printed the step as it ran
    assert any(t["tool"] in TOOL_NAMES for t in steps), steps  # a real tool, not only a made-up name

    # the final reply was parsed, or the graph answered for the model; either way an answer with a reason
    assert answer["answer"].strip() and answer["explanation"].strip()
    observed = [m for t in steps for m in t.get("moments", [])]
    for sp in answer["spans"]:  # a span that survives lies inside a moment a tool returned
        assert any(m["video"] == sp["video"] and m["start"] - 1 <= sp["start"] and sp["end"] <= m["end"] + 1
                   for m in observed), (sp, observed)
    if answer.get("unsupported"):
        assert answer["confidence"] == 0.0 and answer["spans"] == [] and answer["answer"] == "not found"
        assert answer["explanation"].startswith("Unsupported: ")
    elif not answer["spans"] and answer["answer"] != "not found":
        # no moment backs it, so what it says must be what the videos said or showed (else it is unsupported)
        said = {w for m in observed for w in re.findall(r"[a-z0-9]+", m["text"].lower())}
        words = {w for w in re.findall(r"[a-z0-9]+", answer["answer"].lower()) if len(w) >= 4}
        assert len(words & said) >= len(words) / 2, (answer["answer"], sorted(words - said))

    # budgets: steps above; the wall clock (plus the process's start and the models' load)
    assert took < BUDGET + 2 + 45, took
    (usage,) = [t["llm_usage"] for t in answer["trace"] if "llm_usage" in t]
    assert usage["model_calls"] >= 1 and usage["prompt_tokens"] > 0
    # the prompt the server counted (its own tokenizer) stayed inside its window
    assert usage["prompt_tokens"] / usage["model_calls"] < llama_server_module.N_CTX


def test_a_model_name_with_a_colon_reaches_the_real_server(talk_library, llama_server, monkeypatch):
    """VDISC_LLM_MODEL=llama3.1:8b + the base URL: the request carries that name, and the server answers to it."""
    from vdisc import Library

    home, _ = talk_library
    for key, value in _env(llama_server).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("VDISC_LLM_MODEL", "llama3.1:8b")
    answer = Library(home, device="cpu").ask(QUESTION, max_steps=1)
    assert answer.planner == "llm"
    (usage,) = [t["llm_usage"] for t in answer.trace if "llm_usage" in t]
    assert usage["served_model"] == "llama3.1:8b"  # llama.cpp names the model of its reply after the request
