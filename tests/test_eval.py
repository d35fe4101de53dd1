"""Evaluation: metrics on hand-computed cases, and `vdisc eval` end to end on the fixtures."""

from __future__ import annotations

import json

import pytest

from vdisc.evaluation import dataset
from vdisc.evaluation.metrics import (answer_key, answer_matches, best_iou, choose_option, contains, iou, percentile,
                                     summarise)

from conftest import FIXTURES
from test_cli import vdisc

EVAL = FIXTURES / "eval" / "talk_eval.jsonl"


def test_iou_edge_cases():
    assert iou((0, 10), (0, 10)) == 1.0
    assert iou((0, 10), (5, 15)) == pytest.approx(5 / 15)
    assert iou((0, 5), (5, 10)) == 0.0  # touching
    assert iou((0, 10), (2, 4)) == pytest.approx(0.2)  # nested
    assert iou((3, 3), (3, 3)) == 1.0 and iou((3, 3), (2, 4)) == 0.0  # zero length
    assert iou((0, 1), (2, 3)) == 0.0
    assert best_iou((10, 20), [(0, 5), (12, 20), (10, 30)]) == pytest.approx(0.8)  # best reference wins
    assert best_iou(None, [(0, 1)]) == 0.0 and best_iou((0, 1), []) == 0.0


def test_answer_matching():
    opts = ["the rocket", "the library", "a red boat"]
    assert choose_option("(B)", opts) == 1
    assert choose_option("Answer: A.", opts) == 0
    assert choose_option("It was the library, at 0:00:27.", opts) == 1
    assert choose_option("the rocket and then the library", opts) is None  # names two: unparseable
    assert choose_option("I am not sure", opts) is None
    assert contains("At 0:00:22 (shown): \"HARBOR 42\".", "42")
    assert not contains("It costs 420 dollars", "42")
    assert contains("Café  Zürich!", "cafe zurich")


@pytest.mark.parametrize("answer,reference", [
    ("two", "2"), ("Two.", "2"), ("14 %", "14%"), ("14 percent", "14%"), ("The bread", "bread"),
    ("forty-two", "42"), ("Gate 7", "gate seven"), ("1,000", "one thousand"), ("two hundred and five", "205"),
    ("25 minutes", "twenty-five minutes"), ("0:00:43–0:00:46", "0:00:43-0:00:46"), ("Not found.", "not found"),
    ("HARBOR 42", "harbor 42"), ("Café", "cafe"),
])
def test_short_answers_match_their_reference_normalised(answer, reference):
    assert answer_matches(answer, reference), (answer_key(answer), answer_key(reference))


@pytest.mark.parametrize("answer,reference", [
    ("3", "2"), ("14%", "14"), ("gate 7", "7"), ("At 0:00:22 (shown): \"HARBOR 42\".", "42"), ("", "2"),
    ("one and two", "3"), ("salt", "sea salt"),
])
def test_short_answers_that_differ_do_not_match(answer, reference):
    assert not answer_matches(answer, reference), (answer_key(answer), answer_key(reference))


def test_summary_by_kind_and_latency():
    recs = [
        {"kind": "a", "iou": 0.6, "correct": True, "latency": 1.0, "tool_calls": 4},
        {"kind": "a", "iou": 0.2, "correct": False, "latency": 3.0, "tool_calls": 2},
        {"kind": "b", "iou": None, "options": ["x", "y"], "choice": None, "correct": False, "latency": 2.0,
         "tool_calls": 3},
        {"kind": "b", "iou": None, "reference": "42", "correct": True, "latency": 4.0, "tool_calls": 5},
    ]
    m = summarise(recs)
    assert m["grounding"] == {"n": 2, "miou": 0.4, "r1@0.3": 0.5, "r1@0.5": 0.5, "r1@0.7": 0.0}
    assert m["mcq"] == {"n": 1, "accuracy": 0.0, "unparseable": 1}
    assert m["open"] == {"n": 1, "accuracy": 1.0}
    assert m["latency"] == {"p50": 2.5, "p95": 3.85} and m["mean_tool_calls"] == 3.5
    assert m["by_kind"]["a"]["grounding"]["miou"] == 0.4 and "grounding" not in m["by_kind"]["b"]
    assert percentile([5.0], 95) == 5.0 and percentile([], 50) == 0.0


def test_dataset_loading(tmp_path):
    items = dataset.load(EVAL)
    assert len(items) == 5 and items[0].video == str((FIXTURES / "talk.mp4").resolve())
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"video": "x.mp4", "question": "q", "spans": [[5, 1]]}\n')
    with pytest.raises(Exception, match="bad.jsonl:1"):
        dataset.load(bad)


def test_vdisc_eval_end_to_end(tmp_path, test_models):
    lib = tmp_path / "lib"
    from vdisc import Library

    Library(lib, models=test_models)  # nothing indexed yet: --index-missing does it
    out = tmp_path / "records.jsonl"
    env = {f"VDISC_{k.upper()}_MODEL": v for k, v in test_models.items()}
    r = vdisc("eval", str(EVAL), "--library", str(lib), "--index-missing", "--baseline", "--json",
              "--out", str(out), env=env)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    m, b = data["metrics"], data["baseline"]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    agent = [x for x in records if x["planner"] == "offline"]
    assert len(agent) == 5 and len(records) == 10
    # the metrics are exactly what the records say (hand-check)
    ious = [x["iou"] for x in agent if x["iou"] is not None]
    assert m["grounding"]["n"] == 4 and m["grounding"]["miou"] == pytest.approx(sum(ious) / 4, abs=1e-4)
    assert m["grounding"]["r1@0.5"] == pytest.approx(sum(i >= 0.5 for i in ious) / 4)
    assert m["grounding"]["r1@0.5"] == 1.0  # the offline planner finds all four moments
    assert m["open"] == {"n": 1, "accuracy": 1.0}  # the short answer is "42"
    (fact,) = [x for x in agent if x["kind"] == "fact"]
    assert fact["answer"] == "42" and "HARBOR 42" in fact["explanation"], fact
    assert m["mcq"]["n"] == 1
    assert set(m["by_kind"]) == {"when_speech", "when_text", "fact", "ordering"}
    assert b["grounding"]["n"] == 4 and "latency" in m
    r = vdisc("eval", str(EVAL), "--library", str(lib), env=env)  # table output, videos already indexed
    assert r.returncode == 0 and "when_speech" in r.stdout
    r = vdisc("eval", str(tmp_path / "nope.jsonl"), "--library", str(lib))
    assert r.returncode != 0 and "no such dataset file" in r.stderr


def test_replay_gives_identical_records(talk_library, tmp_path):
    from vdisc import Library
    from vdisc.agent.replay import ReplayCache
    from vdisc.evaluation.runner import run

    home, _ = talk_library
    items = dataset.load(EVAL)
    path = tmp_path / "replay.jsonl"

    def strip(records):
        return [{k: v for k, v in r.items() if k != "latency"} for r in records]

    first_cache = ReplayCache(path)
    first = run(Library(home), items, replay=first_cache)
    assert first_cache.misses > 0 and first_cache.hits == 0
    size = path.stat().st_size
    again = ReplayCache(path)
    second = run(Library(home), items, replay=again)
    assert strip(second.records) == strip(first.records)
    assert again.hits == first_cache.misses and again.misses == 0  # every tool call came from the file
    assert path.stat().st_size == size
    r = vdisc("eval", str(EVAL), "--library", str(home), "--replay", str(path), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["metrics"]["grounding"] == first.metrics["grounding"]
