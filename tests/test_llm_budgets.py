"""Hard budgets and answers about the video (issue 14, parts 3 and 4), through the real graph.

Time: a chat model (scripted, or a local OpenAI-compatible server) that stalls is cut off within the
wall-clock budget + 2 s and the ask still ends with an answer. Context: a 20-video library's prompts
stay inside an 8k window, with long results cut (and saying so) and old ones summarised (moments kept).
First turn: a forced tool choice, asked again with "auto" where the server refuses it, and a prose
reply that no tool result supports is never the answer.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from vdisc import Library, prompts
from vdisc.agent import budget

import test_agent_llm
from fake_llm import ScriptedChatModel, call, final, last_result
from longlib import add_media, new_video
from test_agent_llm import FakeOpenAI, _completion

llm_env, open_lib = test_agent_llm.llm_env, test_agent_llm.open_lib  # the fixtures, shared

QUESTION = "When does the keeper grab the football?"


# -- time --------------------------------------------------------------------------------------------------


@pytest.fixture
def release() -> Any:
    """An event that stalled calls wait on; set when the test ends, so no stalled thread outlives it long."""
    gate = threading.Event()
    yield gate
    gate.set()


def test_a_stalled_model_is_cut_off_within_the_budget(talk_library, open_lib, release):
    home, _ = talk_library

    def stall(messages):
        release.wait(60)  # a provider that never answers (no client timeout to save us)
        return final("too late", [], [])

    fake = ScriptedChatModel(script=[call("search", {"query": "goalkeeper catches the ball", "level": "clip",
                                                     "modality": "speech"}), stall])
    t0 = time.monotonic()
    answer = open_lib(home).ask(QUESTION, llm=fake, max_seconds=3)
    took = time.monotonic() - t0

    assert took < 3 + 2, took
    assert answer.budget_exhausted and answer.steps == 1 and len(fake.calls) == 2
    assert "3 s time budget" in answer.explanation and "cut short" in answer.explanation.lower()
    assert answer.answer != "too late" and answer.spans  # answered from the search that did come back
    (timeout,) = [t for t in answer.trace if "timeout" in t]
    assert "did not reply within" in timeout["timeout"]


def test_a_stalled_server_is_cut_off_within_the_budget(talk_library, open_lib, llm_env, release):
    home, _ = talk_library

    def stall(body: dict) -> tuple[int, dict]:
        release.wait(60)
        return _completion({"content": "too late"}, "stop")

    with FakeOpenAI([stall] * 4) as server:
        llm_env(server.base_url)
        t0 = time.monotonic()
        answer = open_lib(home).ask(QUESTION, max_seconds=3)
        took = time.monotonic() - t0
        release.set()
    assert took < 3 + 2, took
    assert server.requests and server.requests[0]["body"]["tool_choice"] == "required"
    assert answer.planner == "llm" and answer.budget_exhausted and answer.steps == 0
    assert answer.answer == "not found" and answer.spans == [] and answer.confidence == 0.0
    assert "nothing was found" in answer.explanation and "3 s time budget" in answer.explanation


def test_no_model_call_starts_when_the_budget_is_spent(talk_library, open_lib, monkeypatch):
    """The tool took the whole budget: the model is not called again; the answer comes from the tool.

    The real search runs, then waits out the budget, so the first model call always starts (however slow
    the machine is to set up the run) and no time is left for a second one."""
    from vdisc.agent import toolbox

    budget = 2.0
    real = toolbox.TOOLS["search"]

    @functools.wraps(real)  # the same schema
    def slow_search(*args, **kwargs):
        out = real(*args, **kwargs)
        time.sleep(budget)
        return out

    monkeypatch.setitem(toolbox.TOOLS, "search", slow_search)
    home, _ = talk_library
    fake = ScriptedChatModel(script=[call("search", {"query": "goalkeeper catches the ball"})])
    answer = open_lib(home).ask(QUESTION, llm=fake, max_seconds=budget)
    assert len(fake.calls) == 1 and answer.budget_exhausted and answer.steps == 1
    assert answer.spans and "time budget" in answer.explanation


# -- context -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def twenty_videos(tmp_path_factory, tiny_clip_dir) -> tuple[Any, dict[str, str]]:
    """A library of 20 half-hour videos (30 clips, 10 scenes each) written through the Store."""
    models = {"visual": f"local-dir:{tiny_clip_dir}", "text": "all-MiniLM-L6-v2", "asr": "none", "ocr": "none",
              "caption": "none"}
    home = tmp_path_factory.mktemp("twenty")
    lib = Library(home, device="cpu", models=models)
    for i in range(20):
        vid = new_video(lib.store, f"v{i:02d}.mp4", status="done")
        add_media(lib.store, lib.registry, vid, i * 3600.0, i * 3600.0 + 1800, clip_seconds=60, scene_clips=3,
                  frames=1, needles={i * 3600.0 + 900: f"The goalkeeper of team {i} catches the ball."})
    return home, models


def _tokenizer():
    """SmolLM2's real tokenizer when llama-cpp-python and the GGUF are here, else the planner's estimate."""
    from llama_server import gguf_path

    path = gguf_path()
    try:
        from llama_cpp import Llama
    except ImportError:
        path = None
    if path is None:
        return "estimate (chars / 2.5)", budget.tokens
    vocab = Llama(model_path=str(path), vocab_only=True, verbose=False)
    return "SmolLM2", lambda text: len(vocab.tokenize(text.encode(), add_bos=False))


def test_a_20_video_library_stays_inside_an_8k_window(twenty_videos):
    home, models = twenty_videos
    lib = Library(home, device="cpu", models=models)
    searches = [call("search", {"query": f"the goalkeeper of team {i} catches the ball", "top_k": 30})
                for i in range(6)]

    def answer(messages):
        step, body = last_result(messages, "search")
        hit = body["hits"][0]
        return final("team 5", [{"video": hit["video"], "start": hit["start"], "end": hit["end"],
                                 "confidence": 0.8}], [step])

    fake = ScriptedChatModel(script=[call("browse", {"max_scenes": 200}), *searches, answer])
    result = lib.ask("when does the goalkeeper of team 5 catch the ball?", llm=fake, max_steps=12)
    assert result.steps == 7 and not result.budget_exhausted and result.spans

    name, count = _tokenizer()
    tools = json.dumps(fake.bound_tools[0])
    sizes = [count(tools) + sum(count(str(m.content)) + 8 for m in sent) for sent in fake.calls]
    print(f"prompt tokens per call ({name}): {sizes}")
    assert max(sizes) <= 8000 - budget.reply_tokens(8000), sizes
    first = fake.calls[0]
    assert len(first) == 2 and sizes[0] < 4000  # system + question + tools

    # the browse of 20 videos was cut, and says so inside the result
    browse_msg = next(m for m in fake.calls[1] if isinstance(m, ToolMessage))
    assert '"cut": "this result was cut to fit 2000 tokens' in browse_msg.content
    assert "ask for less" in browse_msg.content
    # by the last call, older results are summarised, their moments kept
    last = [m for m in fake.calls[-1] if isinstance(m, ToolMessage)]
    assert any("summarised" in m.content for m in last) and "summarised" not in last[-1].content
    search_obs = [o for o in result.trace if o.get("tool") == "search"]
    first_search_msg = last[1]
    assert "summarised" in first_search_msg.content
    m0 = search_obs[0]["moments"][0]
    assert f'"video": "{m0["video"]}", "start": {m0["start"]}, "end": {m0["end"]}' in first_search_msg.content
    assert any("context" in t for t in result.trace)


def test_the_context_setting_is_read_from_the_environment(twenty_videos, monkeypatch):
    home, models = twenty_videos
    monkeypatch.setenv("VDISC_LLM_CONTEXT", "3000")
    fake = ScriptedChatModel(script=[call("browse", {}), final("not found", [], [1])])
    Library(home, device="cpu", models=models).ask("what is in the videos?", llm=fake)
    browse_msg = next(m for m in fake.calls[1] if isinstance(m, ToolMessage))
    assert "cut to fit 750 tokens" in browse_msg.content
    assert budget.tokens(browse_msg.content) <= 750 + 20


def test_cut_keeps_valid_json_and_the_best_items_first():
    body = {"hits": [{"video": "a.mp4", "start": float(i), "end": i + 1.0, "snippet": "word " * 40}
                     for i in range(50)], "total": 50}
    out = budget.cut(body, 300)
    text = json.dumps(out)
    assert budget.tokens(text) <= 300
    assert out["total"] == 50 and [h["start"] for h in out["hits"]] == [float(i) for i in range(len(out["hits"]))]
    assert f"hits {len(out['hits'])} of 50 kept" in out["cut"]
    assert budget.cut({"hits": []}, 300) == {"hits": []}  # a body that fits is left alone


# -- the first turn and unsupported answers -----------------------------------------------------------------


PROSE = "It's usually during a video that shows what happens when you press the button."


def _search_call(body: dict) -> tuple[int, dict]:
    args = json.dumps({"query": "the keeper catches the ball", "modality": "speech"})
    return _completion({"content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "search", "arguments": args}}]}, "tool_calls")


def _answer_from_hit(body: dict) -> tuple[int, dict]:
    tool_msg = next(m for m in body["messages"] if m["role"] == "tool")
    hit = json.loads(tool_msg["content"].split("\n", 1)[1].rsplit("\n", 1)[0])["hits"][0]
    return _completion({"content": json.dumps({
        "answer": "the keeper catches the ball", "explanation": hit["snippet"],
        "spans": [{"video": hit["video"], "start": hit["start"], "end": hit["end"], "confidence": 0.8}],
        "evidence": [1]})}, "stop")


def test_a_prose_first_reply_is_never_the_answer(talk_library, open_lib, llm_env):
    home, _ = talk_library
    with FakeOpenAI([lambda body: _completion({"content": PROSE}, "stop")] * 2) as server:
        llm_env(server.base_url)
        answer = open_lib(home).ask(QUESTION)
    first, second = (r["body"] for r in server.requests)
    assert first["tool_choice"] == "required" and [m["role"] for m in first["messages"]] == ["system", "user"]
    # asked again, with an instruction to call a tool (and the server's default choice)
    assert second.get("tool_choice", "auto") == "auto" and second["tools"]
    assert second["messages"][-1] == {"role": "user", "content": prompts.render("call_a_tool")}

    assert answer.unsupported and answer.answer == "not found"
    assert answer.spans == [] and answer.confidence == 0.0 and answer.steps == 0 and not answer.evidence
    assert answer.explanation.startswith("Unsupported: the model answered without any tool result")
    assert answer.to_dict()["unsupported"] is True
    (note,) = [t for t in answer.trace if "unsupported" in t]
    assert PROSE in note["reply"]


def test_a_prose_first_reply_is_asked_again_and_the_search_answers(talk_library, open_lib, llm_env):
    home, _ = talk_library
    replies = [lambda body: _completion({"content": PROSE}, "stop"), _search_call, _answer_from_hit]
    with FakeOpenAI(replies) as server:
        llm_env(server.base_url)
        answer = open_lib(home).ask(QUESTION)
    assert len(server.requests) == 3
    assert not answer.unsupported and answer.steps == 1 and answer.spans and answer.confidence == 0.8
    assert "unsupported" not in answer.to_dict()


REFUSED = (500, {"error": {"message": "", "type": "internal_server_error", "param": None, "code": None}})
NAMED_SEARCH = {"type": "function", "function": {"name": "search"}}


def test_a_server_that_refuses_required_is_forced_to_the_search_tool(talk_library, open_lib, llm_env):
    """llama-cpp-python's chatml-function-calling answers tool_choice "required" with HTTP 500 and no
    message, and takes a named tool choice."""
    home, _ = talk_library
    later = iter([_search_call, _answer_from_hit])

    def reply(body: dict) -> tuple[int, dict]:
        return REFUSED if body.get("tool_choice") == "required" else next(later)(body)

    with FakeOpenAI([reply] * 6) as server:
        llm_env(server.base_url)
        answer = open_lib(home).ask(QUESTION)
    choices = [r["body"].get("tool_choice") for r in server.requests]
    # "required" (the client retries a 500 once), then the named tool, then the usual turn
    assert choices == ["required", "required", NAMED_SEARCH, None], choices
    assert answer.steps == 1 and answer.spans and not answer.unsupported
    assert any("tool_choice" in t and "refused tool_choice required" in t["tool_choice"] for t in answer.trace)


def test_a_server_that_refuses_every_forced_choice_is_asked_with_auto(talk_library, open_lib, llm_env):
    home, _ = talk_library
    later = iter([_search_call, _answer_from_hit])

    def reply(body: dict) -> tuple[int, dict]:
        if body.get("tool_choice") not in (None, "auto"):
            return 400, {"error": {"message": "tool_choice is not supported", "type": "invalid_request_error"}}
        return next(later)(body)

    with FakeOpenAI([reply] * 6) as server:
        llm_env(server.base_url)
        answer = open_lib(home).ask(QUESTION)
    choices = [r["body"].get("tool_choice") for r in server.requests]
    assert choices == ["required", NAMED_SEARCH, None, None], choices  # a 400 is not retried by the client
    assert server.requests[2]["body"]["messages"][-1]["content"] == prompts.render("call_a_tool")
    assert answer.steps == 1 and answer.spans and not answer.unsupported


def test_an_answer_no_result_contains_is_unsupported(talk_library, open_lib):
    home, _ = talk_library
    fake = ScriptedChatModel(script=[
        call("search", {"query": "goalkeeper catches the ball"}),
        final("Zanzibar", [], [1]),
    ])
    answer = open_lib(home).ask(QUESTION, llm=fake)
    assert answer.unsupported and answer.answer == "not found" and answer.confidence == 0.0
    assert "no tool result contains what it says" in answer.explanation and "Zanzibar" in answer.explanation
    # a "not found" after a search, and an answer in the search's words, are findings (or honest absences)
    for text in ("not found", "the goalkeeper"):
        fake = ScriptedChatModel(script=[call("search", {"query": "goalkeeper catches the ball"}),
                                         final(text, [], [1])])
        assert not open_lib(home).ask(QUESTION, llm=fake).unsupported, text


def test_a_prose_reply_from_a_scripted_model_is_asked_again_once(talk_library, open_lib):
    home, _ = talk_library
    fake = ScriptedChatModel(script=[AIMessage(content=PROSE), AIMessage(content=PROSE)])
    answer = open_lib(home).ask(QUESTION, llm=fake)
    assert len(fake.calls) == 2 and answer.unsupported and answer.answer == "not found"
    assert isinstance(fake.calls[1][-1], HumanMessage) and fake.calls[1][-1].content == prompts.render("call_a_tool")
