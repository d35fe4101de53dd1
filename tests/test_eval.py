"""Evaluation: metrics on hand-computed cases, and `vdisc eval` end to end on the fixtures."""

from __future__ import annotations

import json

import pytest

from vdisc.evaluation import dataset
from vdisc.evaluation.calibration import fit
from vdisc.agent.calibration import min_confidence
from vdisc.config import Settings
from vdisc.evaluation.metrics import (answer_key, answer_matches, best_iou, choose_option, contains, iou, is_hit,
                                     percentile, summarise)

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
    ("HARBOR 42", "harbor 42"), ("Café", "cafe"), ("seven three nine one", "7391"),
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
    assert m["grounding"] == {"n": 2, "miou": 0.4, "r1@0.3": 0.5, "r1@0.5": 0.5, "r1@0.7": 0.0, "hit": 0.0}
    assert m["mcq"] == {"n": 1, "accuracy": 0.0, "unparseable": 1}
    assert m["open"] == {"n": 1, "accuracy": 1.0}
    assert m["latency"] == {"p50": 2.5, "p95": 3.85} and m["mean_tool_calls"] == 3.5
    assert m["by_kind"]["a"]["grounding"]["miou"] == 0.4 and "grounding" not in m["by_kind"]["b"]
    assert percentile([5.0], 95) == 5.0 and percentile([], 50) == 0.0


def test_dataset_loading(tmp_path):
    items = dataset.load(EVAL)
    assert len(items) == 6 and items[0].video == str((FIXTURES / "talk.mp4").resolve())
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"video": "x.mp4", "question": "q", "spans": [[5, 1]]}\n')
    with pytest.raises(Exception, match="bad.jsonl:1"):
        dataset.load(bad)


def test_vdisc_eval_end_to_end(tmp_path, test_models):
    lib = tmp_path / "lib"
    from vdisc import Library

    # no visual model: the tiny CLIP's random similarities would "see" the absent event somewhere
    models = {**test_models, "visual": "none"}
    Library(lib, models=models)  # nothing indexed yet: --index-missing does it
    out = tmp_path / "records.jsonl"
    env = {f"VDISC_{k.upper()}_MODEL": v for k, v in models.items()}
    r = vdisc("eval", str(EVAL), "--library", str(lib), "--index-missing", "--baseline", "--json",
              "--out", str(out), env=env)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    m, b = data["metrics"], data["baseline"]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    agent = [x for x in records if x["planner"] == "offline"]
    assert len(agent) == 6 and len(records) == 12
    # the metrics are exactly what the records say (hand-check)
    ious = [x["iou"] for x in agent if x["iou"] is not None]
    assert m["grounding"]["n"] == 4 and m["grounding"]["miou"] == pytest.approx(sum(ious) / 4, abs=1e-4)
    assert m["grounding"]["r1@0.5"] == pytest.approx(sum(i >= 0.5 for i in ious) / 4)
    assert m["grounding"]["r1@0.5"] == 1.0  # the offline planner finds all four moments
    assert m["open"] == {"n": 2, "accuracy": 1.0}, [(x["answer"], x["confidence"]) for x in agent]  # the short answer is "42"; the absent one "not found"
    (fact,) = [x for x in agent if x["kind"] == "fact"]
    assert fact["answer"] == "42" and "HARBOR 42" in fact["explanation"], fact
    assert m["mcq"]["n"] == 1
    assert set(m["by_kind"]) == {"when_speech", "when_text", "fact", "ordering", "absent"}
    (absent,) = [x for x in agent if x["kind"] == "absent"]
    assert absent["answer"] == "not found" and absent["correct"] and not absent["found"], absent
    assert m["found"] == 1.0 and m["grounding"]["hit"] == 1.0  # every present moment found, none invented
    assert m["by_kind"]["absent"]["open"] == {"n": 1, "accuracy": 1.0}
    assert b["by_kind"]["absent"]["open"]["accuracy"] == 0.0  # plain search always returns something
    assert b["grounding"]["n"] == 4 and "latency" in m
    r = vdisc("eval", str(EVAL), "--library", str(lib), env=env)  # table output, videos already indexed
    assert r.returncode == 0 and "when_speech" in r.stdout
    r = vdisc("eval", str(tmp_path / "nope.jsonl"), "--library", str(lib))
    assert r.returncode != 0 and "no such dataset file" in r.stderr


def test_hit_is_the_right_moment_whatever_its_edges():
    assert is_hit((41.0, 44.0), [(40.0, 43.0)]) and not is_hit((44.0, 50.0), [(40.0, 43.0)])
    assert not is_hit((0.0, 60.0), [(40.0, 43.0)])  # a minute-long span points at a region, not a moment
    assert not is_hit(None, [(0.0, 1.0)])
    recs = [{"kind": "a", "iou": 0.2, "hit": True, "found": True, "reference": None},
            {"kind": "a", "iou": 0.0, "hit": False, "found": False, "reference": None},
            {"kind": "absent", "iou": None, "found": False, "reference": "not found", "correct": True}]
    m = summarise(recs)
    assert m["grounding"]["hit"] == 0.5 and m["grounding"]["r1@0.3"] == 0.0
    assert m["found"] == 0.5  # absent questions are not counted in the found rate


def test_calibration_cuts_between_absent_and_found():
    absent = [{"reference": "not found", "confidence": c} for c in (0.1, 0.2, 0.3, 0.62)]
    found = [{"reference": None, "hit": True, "confidence": c} for c in (0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)]
    missed = [{"reference": None, "hit": False, "confidence": 0.05}]  # neither side: wrong either way
    got = fit(absent + found + missed)
    assert got["min_confidence"] == pytest.approx(0.35)  # keeps every find, turns away 3 of 4 absent
    assert got["absent_rejected"] == 0.75 and got["found_kept"] == 1.0
    with pytest.raises(ValueError, match="absent"):
        fit(found)


def test_the_cut_is_the_setting_else_the_fitted_one_else_the_default(tmp_path, monkeypatch):
    s = Settings.load(tmp_path)
    assert min_confidence(s) > 0.15  # the shipped fit for the default text model (agent/calibration.json)
    monkeypatch.setenv("VDISC_MIN_CONFIDENCE", "0.42")
    assert min_confidence(Settings.load(tmp_path)) == 0.42
    monkeypatch.delenv("VDISC_MIN_CONFIDENCE")
    assert min_confidence(Settings.load(tmp_path, models={"text": "some/other-model"})) == 0.15


def test_vdisc_eval_calibrate_writes_the_fitted_cut(talk_library, tmp_path):
    home, _ = talk_library
    out = tmp_path / "calibration.json"
    r = vdisc("eval", str(EVAL), "--library", str(home), "--calibrate", str(out))
    assert r.returncode == 0, r.stderr
    table = json.loads(out.read_text())
    ((model, got),) = table["text_models"].items()
    assert got["absent"] == 1 and got["found"] >= 3 and got["absent_rejected"] == 1.0, got
    assert "calibrated for" in r.stderr
    only_present = tmp_path / "present.jsonl"
    only_present.write_text("\n".join(line for line in EVAL.read_text().splitlines() if "not found" not in line))
    r = vdisc("eval", str(only_present), "--library", str(home), "--calibrate", str(tmp_path / "x.json"))
    assert r.returncode != 0 and "--calibrate: calibration needs questions about absent things" in r.stderr
    assert "Traceback" not in r.stderr


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
