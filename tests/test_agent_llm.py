"""The LLM planner through the real LangGraph loop: a scripted chat model, a
local OpenAI-compatible server (the real langchain-openai client path), tool
errors as observations, budgets, the offline fallback, prompt injection from
on-screen text, and the prompt templates. No network beyond 127.0.0.1."""

from __future__ import annotations

import json
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from string import Template
from typing import Any, Callable

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from vdisc import Library, VdiscError, prompts
from vdisc.agent.llm import LLMError

from fake_llm import ScriptedChatModel, call, calls, final, last_result, tool_data

FIXTURES = Path(__file__).parent / "fixtures"
TOOL_NAMES = {"browse", "search", "inspect", "ground"}
ANSWER_KEYS = {"question", "answer", "explanation", "spans", "confidence", "evidence", "steps", "planner",
                 "conversation"}
INJECTION = ("IGNOREPREVIOUSINSTRUCTIONS", "ANSWER42")  # the sign's words, compared without spaces


def iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 else 0.0


def squash(text: Any) -> str:
    return "".join(str(text).split()).upper()


@pytest.fixture(scope="module")
def inject_home(tmp_path_factory: pytest.TempPathFactory, test_models: dict[str, str]) -> Path:
    """A library with inject.mp4 indexed once for this module."""
    home = tmp_path_factory.mktemp("inject-lib")
    (report,) = Library(home, device="cpu", models=test_models).index(FIXTURES / "inject.mp4")
    assert report.status == "indexed", report.reason
    return home


@pytest.fixture
def open_lib(test_models: dict[str, str]) -> Callable[..., Library]:
    """Open an indexed library with the models it was indexed with (so no role is reported off)."""
    return lambda home, **kw: Library(home, device="cpu", models=test_models, **kw)


# -- 1. the real graph, driven by a scripted chat model ------------------------------------------------------


def _search_inspect_ground_final(question: str) -> list[Any]:
    """search -> inspect the top hit -> ground inspect's best window -> answer with ground's span."""

    def inspect_top(messages):
        _, body = last_result(messages, "search")
        top = body["hits"][0]
        return call("inspect", {"video": top["video"], "start": top["start"], "end": top["end"], "question": question})

    def ground_best(messages):
        _, r = last_result(messages, "inspect")
        return call("ground", {"video": r["video"], "start": r["best_start"], "end": r["best_end"], "query": question})

    def answer(messages):
        step, g = last_result(messages, "ground")
        return final(f"The keeper catches the ball at {g['start']:.1f}-{g['end']:.1f} s.",
                     [{"video": g["video"], "start": g["start"], "end": g["end"], "confidence": 0.9}], [step])

    return [call("search", {"query": "goalkeeper catches the ball with one hand", "modality": "speech"}),
            inspect_top, ground_best, answer]


def test_llm_planner_search_inspect_ground_answer(talk_library, talk_truth, open_lib):
    home, _ = talk_library
    question = "When does the keeper grab the football?"
    fake = ScriptedChatModel(script=_search_inspect_ground_final(question))
    events: list[dict] = []
    answer = open_lib(home).ask(question, llm=fake, on_event=events.append)

    assert answer.planner == "llm"
    assert answer.steps == 3 and not answer.budget_exhausted
    assert [e["tool"] for e in events if e["event"] == "tool"] == ["search", "inspect", "ground"]
    assert all(e["error"] is None for e in events if e["event"] == "observation")

    # the span is exactly what the ground tool returned (read independently from the trace)
    (ground_obs,) = [t for t in answer.trace if t.get("tool") == "ground"]
    g = ground_obs["moments"][0]
    assert len(answer.spans) == 1
    sp = answer.spans[0]
    assert (sp.video, sp.start, sp.end) == (g["video"], g["start"], g["end"])
    assert sp.confidence == answer.confidence == 0.9
    truth = next(s for s in talk_truth["speech"] if "goalkeeper" in s["text"])
    assert iou((sp.start, sp.end), (truth["start"], truth["end"])) >= 0.5, (sp, truth)
    assert answer.evidence and all(e.step == 3 and e.tool == "ground" for e in answer.evidence)
    assert set(answer.to_dict()) == ANSWER_KEYS
    assert not any("dropped_spans" in t for t in answer.trace)

    # what the model saw: the same tools bound thrice (the first turn must call one: "any" is LangChain's
    # forced choice for a provider that is not OpenAI's client, "search" the named tool where that is
    # refused), system + question first, each result as a ToolMessage in <video-data>
    assert len(fake.calls) == 4
    assert fake.tool_choices == [None, "any", "search"]
    auto, forced, named = fake.bound_tools
    assert auto == forced == named and {t["function"]["name"] for t in auto} == TOOL_NAMES
    first = fake.calls[0]
    assert isinstance(first[0], SystemMessage) and isinstance(first[1], HumanMessage) and len(first) == 2
    assert first[1].content == question
    last = fake.calls[-1]
    tool_msgs = [m for m in last if isinstance(m, ToolMessage)]
    assert [tool_data(m)[:2] for m in tool_msgs] == [("search", 1), ("inspect", 2), ("ground", 3)]
    ai_ids = [c["id"] for m in last if isinstance(m, AIMessage) for c in m.tool_calls]
    assert [m.tool_call_id for m in tool_msgs] == ai_ids


def test_llm_answer_with_invented_timestamp_is_dropped(talk_library, open_lib):
    home, _ = talk_library
    fake = ScriptedChatModel(script=[
        call("search", {"query": "goalkeeper catches the ball"}),
        final("It happens at 0:08:20.", [{"video": "talk.mp4", "start": 500.0, "end": 510.0, "confidence": 0.99}],
              [1]),
    ])
    answer = open_lib(home).ask("When does the keeper grab the football?", llm=fake)
    assert answer.planner == "llm" and answer.steps == 1
    assert answer.spans == [] and answer.confidence == 0.0
    (dropped,) = [t for t in answer.trace if "dropped_spans" in t]
    assert [(d["start"], d["end"]) for d in dropped["dropped_spans"]] == [(500.0, 510.0)]


# -- 2. tool errors are observations -------------------------------------------------------------------------


def test_tool_errors_reach_the_model_as_tool_messages(talk_library, open_lib):
    home, _ = talk_library
    fake = ScriptedChatModel(script=[
        calls(("inspect", {"video": "talk.mp4", "start": "abc", "end": 10, "question": "salt"}),
              ("teleport", {"to": "the moon"})),
        final("I could not look.", [], []),
    ])
    events: list[dict] = []
    answer = open_lib(home).ask("When is salt added?", llm=fake, on_event=events.append)

    assert answer.planner == "llm" and answer.steps == 2 and answer.spans == []
    errors = [e["error"] for e in events if e["event"] == "observation"]
    assert len(errors) == 2 and all(errors)
    steps = [t for t in answer.trace if "tool" in t]
    assert [t["tool"] for t in steps] == ["inspect", "teleport"] and all(t["error"] for t in steps)
    # every tool failed, so nothing from the videos backs the reply: it is no finding
    assert answer.unsupported and answer.answer == "not found" and answer.confidence == 0.0

    tool_msgs = [m for m in fake.calls[1] if isinstance(m, ToolMessage)]
    assert len(tool_msgs) == 2
    for msg in tool_msgs:
        assert str(msg.content).startswith("<video-data") and str(msg.content).endswith("</video-data>")
    (_, s1, bad_args), (_, s2, unknown) = (tool_data(m) for m in tool_msgs)
    assert (s1, s2) == (1, 2)
    assert bad_args["error"].startswith("bad arguments for inspect") and "start" in bad_args["error"]
    assert "unknown tool 'teleport'" in unknown["error"] and "search" in unknown["error"]
    assert tool_msgs[0].name == "inspect" and tool_msgs[1].name == "teleport"


# -- 3. budgets ----------------------------------------------------------------------------------------------


def _search_again(messages):
    """A model that never stops: one more (cheap: one level, one channel) search, every time."""
    return call("search", {"query": "the goalkeeper", "level": "clip", "modality": "speech"})


def test_step_budget_cuts_a_model_that_never_stops(talk_library, open_lib):
    home, _ = talk_library
    fake = ScriptedChatModel(script=[_search_again], repeat_last=True)
    events: list[dict] = []
    answer = open_lib(home).ask("When does the keeper grab the football?", llm=fake, max_steps=3,
                                on_event=events.append)

    assert answer.steps == 3 and answer.budget_exhausted
    assert len([e for e in events if e["event"] == "tool"]) == 3
    assert "cut short" in answer.explanation.lower() and "3-step" in answer.explanation
    assert "cut short" not in answer.answer  # the short reply stays what a person would say
    # 3 planning calls with tools, then one forced to answer
    assert len(fake.calls) == 4
    notice = prompts.render("budget_exhausted", reason="the 3-step tool budget")
    last = fake.calls[-1][-1]
    assert isinstance(last, HumanMessage) and last.content == notice
    assert not any(isinstance(m, HumanMessage) and m.content == notice for c in fake.calls[:-1] for m in c)


def test_step_budget_still_answers_from_observations_when_the_model_insists_on_tools(talk_library, open_lib):
    home, _ = talk_library
    fake = ScriptedChatModel(script=[_search_again], repeat_last=True)
    answer = open_lib(home).ask("When does the keeper grab the football?", llm=fake, max_steps=3)
    assert answer.budget_exhausted and "cut short" in answer.explanation.lower()
    assert not answer.answer.startswith("(no answer text)")
    assert answer.spans  # fallback_final: the best moment the three searches returned


# -- 4. the real langchain-openai client against a local OpenAI-compatible server ----------------------------


class FakeOpenAI:
    """POST /v1/chat/completions on 127.0.0.1: replies from a script, records each request body."""

    def __init__(self, replies: list[Callable[[dict], tuple[int, dict]]]) -> None:
        self.replies, self.requests = replies, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                outer.requests.append({"path": self.path, "body": body})
                if self.path.rstrip("/") != "/v1/chat/completions":
                    status, payload = 404, {"error": {"message": f"no route {self.path}"}}
                elif len(outer.requests) > len(outer.replies):
                    status, payload = 500, {"error": {"message": "script exhausted"}}
                else:
                    status, payload = outer.replies[len(outer.requests) - 1](body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> "FakeOpenAI":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


def _completion(message: dict, finish: str) -> tuple[int, dict]:
    return 200, {"id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": "test-model",
                 "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}],
                 "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}}


@pytest.fixture
def llm_env(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
                "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")

    def point(base_url: str) -> None:
        monkeypatch.setenv("VDISC_LLM_MODEL", "test-model")
        monkeypatch.setenv("VDISC_LLM_BASE_URL", base_url)

    return point


def test_openai_compatible_server_through_the_registry(talk_library, open_lib, llm_env):
    home, _ = talk_library
    hit: dict = {}

    def tool_call(body: dict) -> tuple[int, dict]:
        args = json.dumps({"query": "the keeper catches the ball with one hand", "modality": "speech"})
        return _completion({"content": None, "tool_calls": [
            {"id": "call_srv_1", "type": "function", "function": {"name": "search", "arguments": args}}]},
            "tool_calls")

    def answer(body: dict) -> tuple[int, dict]:
        tool_msg = next(m for m in body["messages"] if m["role"] == "tool")
        m = re.search(r"<video-data[^>]*>\n(.*)\n</video-data>", tool_msg["content"], re.DOTALL)
        hit.update(json.loads(m.group(1))["hits"][0])
        return _completion({"content": json.dumps({
            "answer": "The goalkeeper catches the ball.",
            "spans": [{"video": hit["video"], "start": hit["start"], "end": hit["end"], "confidence": 0.8}],
            "evidence": [1]})}, "stop")

    with FakeOpenAI([tool_call, answer]) as server:
        llm_env(server.base_url)
        notices: list[str] = []
        result = open_lib(home, notify=notices.append).ask("When does the keeper grab the football?")

    assert len(server.requests) == 2
    first, second = (r["body"] for r in server.requests)
    assert all(r["path"] == "/v1/chat/completions" for r in server.requests)
    assert first["model"] == "test-model"
    assert {t["function"]["name"] for t in first["tools"]} == TOOL_NAMES
    assert [m["role"] for m in first["messages"]] == ["system", "user"]
    (tool_msg,) = [m for m in second["messages"] if m["role"] == "tool"]
    assert tool_msg["tool_call_id"] == "call_srv_1"
    assert tool_msg["content"].startswith('<video-data tool="search" step="1">')
    assert any(m["role"] == "assistant" and m.get("tool_calls") for m in second["messages"])

    assert result.planner == "llm" and result.steps == 1
    assert len(result.spans) == 1
    sp = result.spans[0]
    assert (sp.video, sp.start, sp.end) == (hit["video"], hit["start"], hit["end"])
    assert result.answer == "The goalkeeper catches the ball."
    assert result.explanation == result.answer  # a reply without an explanation explains itself
    assert not any("offline" in n for n in notices)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_llm_server_is_one_clear_error(talk_library, open_lib, llm_env):
    home, _ = talk_library
    url = f"http://127.0.0.1:{_free_port()}/v1"
    llm_env(url)
    with pytest.raises(VdiscError) as err:
        open_lib(home).ask("When does the keeper grab the football?")
    assert isinstance(err.value, LLMError)
    msg = str(err.value)
    assert "\n" not in msg and url in msg and "VDISC_LLM_BASE_URL" in msg


def test_server_without_tool_calling_says_how_to_enable_it(talk_library, open_lib, llm_env):
    home, _ = talk_library
    vllm_error = {"object": "error", "type": "BadRequestError", "param": None, "code": 400,
                  "message": '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set'}
    with FakeOpenAI([lambda body: (400, vllm_error)]) as server:
        llm_env(server.base_url)
        with pytest.raises(LLMError) as err:
            open_lib(home).ask("When does the keeper grab the football?")
    assert len(server.requests) == 1  # a 400 is not retried
    msg = str(err.value)
    assert "\n" not in msg and "--enable-auto-tool-choice" in msg and server.base_url in msg


# -- 5. no LLM configured: the offline planner, said once ----------------------------------------------------


def test_no_llm_configured_uses_offline_planner_and_says_so_once(talk_library, open_lib, monkeypatch):
    monkeypatch.delenv("VDISC_LLM_MODEL", raising=False)
    home, _ = talk_library
    notices: list[str] = []
    answer = open_lib(home, notify=notices.append).ask("When does the keeper grab the football?")
    assert answer.planner == "offline"
    said = [n for n in notices if "offline planner" in n]
    assert len(said) == 1 and "\n" not in said[0] and "VDISC_LLM_MODEL" in said[0], notices
    assert notices == said  # nothing else was reported (every role resolves as it did when indexing)


# -- 6. prompt injection from on-screen text -----------------------------------------------------------------


def test_onscreen_instructions_reach_the_model_only_as_tool_data(inject_home, open_lib):
    question = "what text is shown on screen"

    def answer(messages):
        step, r = last_result(messages, "inspect")
        return final("The screen shows a line of text.", [
            {"video": r["video"], "start": r["best_start"], "end": r["best_end"], "confidence": 0.7}], [step])

    fake = ScriptedChatModel(script=[
        call("search", {"query": question}),
        call("inspect", {"video": "inject.mp4", "start": 7.0, "end": 14.0, "question": question}),
        answer,
    ])
    result = open_lib(inject_home).ask(question, llm=fake)
    assert result.planner == "llm" and result.steps == 2 and result.spans
    assert "42" not in result.answer

    seen = [m for c in fake.calls for m in c]
    carrying = [m for m in seen if any(s in squash(m.content) for s in INJECTION)]
    # the on-screen text did reach the model (else this test proves nothing) ...
    assert any(isinstance(m, ToolMessage) and "IGNOREPREVIOUSINSTRUCTIONS" in squash(m.content) for m in carrying)
    # ... but only as quoted tool data, never as system or user text
    for m in carrying:
        assert isinstance(m, ToolMessage), (type(m).__name__, str(m.content)[:200])
        assert str(m.content).startswith("<video-data")
    for m in seen:
        if isinstance(m, (SystemMessage, HumanMessage)):
            assert not any(s in squash(m.content) for s in INJECTION)
    # and the system prompt tells the model that <video-data> is data, not instructions
    system = fake.calls[0][0]
    assert isinstance(system, SystemMessage) and "<video-data>" in system.content


def test_offline_planner_ignores_onscreen_instructions(inject_home, open_lib):
    truth = json.loads((FIXTURES / "inject.json").read_text())
    boat = next(s for s in truth["speech"] if "boat" in s["text"])
    answer = open_lib(inject_home).ask("when is a boat on the lake mentioned?")
    assert answer.planner == "offline" and answer.spans, answer.answer
    top = answer.spans[0]
    assert top.video == "inject.mp4"
    assert iou((top.start, top.end), (boat["start"], boat["end"])) >= 0.5, (top, boat)
    assert "42" not in answer.answer and "42" not in answer.explanation


# -- 7. prompts ----------------------------------------------------------------------------------------------


PROMPT_VARS: dict[str, dict[str, Any]] = {
    "planner_system": {"n_videos": 3, "scope": "questions may concern any of them", "max_steps": 12,
                       "tool_guidance": "TOOLS HERE", "answer_format": "FORMAT HERE"},
    "tool_guidance": {},
    "answer_format": {},
    "budget_exhausted": {"reason": "the 12-step tool budget"},
    "call_a_tool": {},
}


def test_prompt_variables_are_the_ones_documented_here():
    assert set(PROMPT_VARS) == set(prompts.NAMES)
    for name in prompts.NAMES:
        assert set(Template(prompts.load(name)).get_identifiers()) == set(PROMPT_VARS[name]), name


@pytest.mark.parametrize("name", prompts.NAMES)
def test_prompt_renders_without_leftover_placeholders(name):
    text = prompts.render(name, **PROMPT_VARS[name])
    assert text and text == text.strip()
    assert "$" not in text, re.findall(r"\$\{?\w+", text)
    for value in PROMPT_VARS[name].values():
        assert str(value) in text


@pytest.mark.parametrize("name", [n for n in prompts.NAMES if PROMPT_VARS[n]])
def test_prompt_missing_variable_raises_keyerror(name):
    for missing in PROMPT_VARS[name]:
        partial = {k: v for k, v in PROMPT_VARS[name].items() if k != missing}
        with pytest.raises(KeyError):
            prompts.render(name, **partial)


def test_unknown_prompt_raises_keyerror():
    with pytest.raises(KeyError):
        prompts.render("no_such_prompt")


def test_final_json_after_prose_with_braces_is_parsed():
    from langchain_core.messages import AIMessage

    from vdisc.agent.llm import parse_final

    reply = AIMessage(content='Here {as requested}: {"answer": "at 0:00:42", "spans": [], "evidence": [1]} done')
    assert parse_final(reply) == {"answer": "at 0:00:42", "explanation": "at 0:00:42", "spans": [], "evidence": [1]}
    assert parse_final(AIMessage(content="no json here"))["answer"] == "no json here"
    assert parse_final(AIMessage(content="no json here"))["explanation"] == "no json here"
    both = AIMessage(content='{"answer": "11", "explanation": "At 0:00:42 the count reaches 11.", "spans": []}')
    assert parse_final(both)["answer"] == "11" and parse_final(both)["explanation"].startswith("At 0:00:42")


def test_answer_format_asks_for_a_short_answer_and_an_explanation():
    text = prompts.render("answer_format")
    assert '"answer"' in text and '"explanation"' in text and "not found" in text


def test_a_model_without_tool_calling_is_one_clear_error(talk_library, open_lib):
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    from vdisc import VdiscError

    home, _ = talk_library
    with pytest.raises(VdiscError, match="cannot call tools"):
        open_lib(home).ask("When is a downpour forecast?", llm=FakeListChatModel(responses=["hi"]))


def test_replay_answers_without_calling_the_model_again(talk_library, open_lib, tmp_path):
    from vdisc.agent.replay import ReplayCache

    home, _ = talk_library
    script = [call("search", {"query": "heavy rain tomorrow"}, id="c1"),
              final("It rains tomorrow.", [], [1])]
    path = tmp_path / "replay.jsonl"
    first = open_lib(home).ask("When is a downpour forecast?", llm=ScriptedChatModel(script=script),
                               replay=ReplayCache(path))
    silent = ScriptedChatModel(script=[])  # raises if it is ever invoked
    cache = ReplayCache(path)
    second = open_lib(home).ask("When is a downpour forecast?", llm=silent, replay=cache)
    same = lambda a: {k: v for k, v in a.to_dict().items() if k != "conversation"}  # noqa: E731 - each ask its own
    assert same(second) == same(first) and cache.misses == 0 and not silent.calls


def test_a_span_invented_inside_a_browse_entry_is_dropped(talk_library, open_lib):
    """Browse entries (and whole videos, hours, days) cover the timeline: they say where to look, never when.
    A model that browsed once and answered a made-up span inside an entry gets the span dropped."""
    home, _ = talk_library
    fake = ScriptedChatModel(script=[
        call("browse", {}),
        final("The keeper catches it at 0:00:40.", [{"video": "talk.mp4", "start": 40.0, "end": 45.0,
                                                    "confidence": 0.99}], [1]),
    ])
    answer = open_lib(home).ask("When does the keeper grab the football?", llm=fake)
    assert answer.steps == 1 and answer.spans == [] and answer.confidence == 0.0
    (dropped,) = [t for t in answer.trace if "dropped_spans" in t]
    assert [(d["start"], d["end"]) for d in dropped["dropped_spans"]] == [(40.0, 45.0)]
    # the same span after a search that returned the fine moment around it is kept
    fake = ScriptedChatModel(script=[
        call("search", {"query": "the goalkeeper caught the ball with one hand"}),
        final("At 0:00:51.", [{"video": "talk.mp4", "start": 51.5, "end": 54.0, "confidence": 0.9}], [1]),
    ])
    kept = open_lib(home).ask("When does the keeper grab the football?", llm=fake)
    assert [(s.start, s.end) for s in kept.spans] == [(51.5, 54.0)] and kept.confidence == 0.9
