"""Conversations that continue (issue 14, part 6): a follow-up is read against the last answer, with
both planners, from the API and the CLI; the conversation lives in the library (LangGraph's SQLite
checkpointer) and survives the process."""

from __future__ import annotations

import json
import sqlite3

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from vdisc import Library
from vdisc.agent.conversation import FILE, latest
from vdisc.agent.timewords import parse_time

from fake_llm import ScriptedChatModel, call, final, last_result
from test_cli import vdisc

EDGE = 1.0  # seconds


def _speech(truth: dict, word: str) -> dict:
    return next(s for s in truth["speech"] if word in s["text"])


@pytest.mark.parametrize("question,relation,rest", [
    ("and what happened right after?", "right_after", "and what happened"),
    ("What is shown right after that?", "right_after", "What is shown"),
    ("what was said just before it?", "right_before", "what was said"),
    ("and what is on screen at that moment?", "during", "and what is on screen"),
    ("What happens after that?", "after", "What happens"),
])
def test_a_relation_to_the_last_moment_is_read_as_such(question, relation, rest):
    when = parse_time(question)
    assert when.back == relation and when.anchor is None and when.text == rest


def test_a_relation_with_its_own_moment_is_an_anchor_not_a_follow_up():
    when = parse_time("What is said after the rocket launch?")
    assert when.back is None and when.anchor is not None and when.anchor.relation == "after"


def test_offline_follow_ups_are_read_against_the_last_answer(talk_library, talk_truth):
    home, _ = talk_library
    salt, rocket = _speech(talk_truth, "salt"), _speech(talk_truth, "rocket")
    first = Library(home).ask("When does the chef season the soup?", llm="offline")
    assert first.conversation and abs(first.spans[0].start - salt["start"]) <= EDGE
    after = first.followup("and what is said right after?")
    assert after.conversation == first.conversation
    sp = after.spans[0]
    assert abs(sp.start - rocket["start"]) <= EDGE and abs(sp.end - rocket["end"]) <= EDGE, after.explanation
    assert "rocket" in after.answer.lower() and "right after" in after.explanation
    back = after.followup("what was said just before that?")
    assert abs(back.spans[0].start - salt["start"]) <= EDGE, back.explanation
    # a fresh question starts its own conversation, and is not read against the old one
    other = Library(home).ask("When does the chef season the soup?", llm="offline")
    assert other.conversation != first.conversation


def test_the_conversation_is_kept_in_the_library_and_continues_from_the_cli(talk_library, talk_truth):
    home, _ = talk_library
    rain, keeper = _speech(talk_truth, "rain"), _speech(talk_truth, "goalkeeper")
    r = vdisc("ask", "When is a downpour expected?", "--library", str(home), "--llm", "offline", "--json")
    assert r.returncode == 0, r.stderr
    first = json.loads(r.stdout)
    assert abs(first["spans"][0]["start"] - rain["start"]) <= EDGE
    assert latest(home) == first["conversation"]
    with sqlite3.connect(home / FILE) as conn:  # LangGraph's checkpoints, in the library
        assert conn.execute("SELECT count(*) FROM checkpoints WHERE thread_id = ?",
                            (first["conversation"],)).fetchone()[0] > 0
    r = vdisc("ask", "and what is said right after?", "--continue", "--library", str(home), "--llm", "offline",
              "--json")
    assert r.returncode == 0, r.stderr
    nxt = json.loads(r.stdout)
    assert nxt["conversation"] == first["conversation"]
    assert abs(nxt["spans"][0]["start"] - keeper["start"]) <= EDGE, nxt["explanation"]
    r = vdisc("ask", "and then?", "--conversation", "0000nope", "--library", str(home))
    assert r.returncode != 0 and "no conversation '0000nope' in this library" in r.stderr
    assert "Traceback" not in r.stderr


def test_llm_follow_up_sees_the_earlier_turn(talk_library, talk_truth, test_models):
    home, _ = talk_library
    rocket = _speech(talk_truth, "rocket")

    def ground_after(messages):  # the second turn: the model reads the last answer's span from the history
        prior = json.loads(next(m.content for m in reversed(messages) if isinstance(m, AIMessage) and
                                m.content.startswith("{")))
        end = prior["spans"][0]["end"]
        return call("search", {"query": "a rocket launch at dawn", "within": [end, end + 15.0], "modality": "speech"})

    def answer_next(messages):
        step, body = last_result(messages, "search")
        hit = min(body["hits"], key=lambda h: h["start"])
        return final(hit["snippet"], [{"video": hit["video"], "start": hit["start"], "end": hit["end"],
                                       "confidence": 0.8}], [step])

    def first_answer(messages):
        step, body = last_result(messages, "search")
        hit = body["hits"][0]
        return final("at the start", [{"video": hit["video"], "start": hit["start"], "end": hit["end"],
                                       "confidence": 0.9}], [step])

    fake = ScriptedChatModel(script=[call("search", {"query": "chef adds salt to the soup", "modality": "speech"}),
                                     first_answer, ground_after, answer_next])
    lib = Library(home, device="cpu", models=test_models)
    first = lib.ask("When does the chef season the soup?", llm=fake)
    assert first.spans and first.conversation
    nxt = first.followup("And what is said right after?")
    assert nxt.conversation == first.conversation and nxt.planner == "llm"
    second_turn = fake.calls[2]
    assert isinstance(second_turn[0], SystemMessage)
    assert sum(isinstance(m, SystemMessage) for m in second_turn) == 1  # one system prompt for the thread
    humans = [m.content for m in second_turn if isinstance(m, HumanMessage)]
    assert humans == ["When does the chef season the soup?", "And what is said right after?"]
    sp = nxt.spans[0]  # a search hit: the clip that holds the next sentence
    assert sp.start <= rocket["start"] < sp.end and "rocket" in nxt.answer.lower(), nxt.explanation


def test_an_answer_outside_a_conversation_cannot_follow_up(talk_library):
    home, _ = talk_library
    ans = Library(home).ask("When does the chef season the soup?", llm="offline", remember=False)
    assert ans.conversation is None
    with pytest.raises(ValueError, match="not part of a conversation"):
        ans.followup("and then?")
