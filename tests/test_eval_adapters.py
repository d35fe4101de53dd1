"""Benchmark annotation converters: exact records from tiny hand-written
samples of each real format, the CLI, and one-line errors on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vdisc.evaluation import adapters

EVAL = Path(__file__).parent / "fixtures" / "eval"


def _rec(video, question, spans, answer, options, kind):
    return {"video": video, "question": question, "spans": spans,
            "answer": answer, "options": options, "kind": kind}


def test_charades_sta_records():
    got = adapters.charades_sta(EVAL / "charades_sta.txt", video_dir="/data/charades")
    assert got == [
        _rec("/data/charades/3MSZA.mp4", "person turn a light on.", [[24.3, 30.4]], None, None, "grounding"),
        _rec("/data/charades/3MSZA.mp4", "a person is walking into a room.", [[0.0, 6.9]], None, None, "grounding"),
        _rec("/data/charades/AO8RW.mp4", "a person is putting a book on a shelf.", [[1.2, 8.15]],
             None, None, "grounding"),
    ]


def test_charades_sta_without_video_dir_and_custom_ext():
    got = adapters.charades_sta(EVAL / "charades_sta.txt", video_ext="webm")
    assert [r["video"] for r in got] == ["3MSZA.webm", "3MSZA.webm", "AO8RW.webm"]


@pytest.mark.parametrize("line", [
    "3MSZA 24.3##person turn a light on.",
    "3MSZA 24.3 30.4 person turn a light on.",
    "3MSZA abc 30.4##person turn a light on.",
    "3MSZA 30.4 24.3##person turn a light on.",
    "3MSZA 1 2##   ",
])
def test_charades_sta_malformed_line_names_line_number(tmp_path, line):
    src = tmp_path / "bad.txt"
    src.write_text("3MSZA 0.0 6.9##a person walks in.\n\n" + line + "\n")
    with pytest.raises(ValueError, match=r"bad\.txt:3: "):
        adapters.charades_sta(src)


def test_qvhighlights_records():
    got = adapters.qvhighlights(EVAL / "qvhighlights.jsonl", video_dir="/data/qvh")
    assert got == [
        _rec("/data/qvh/bP5KfdFJzC4_660.0_810.0.mp4",
             "A family is playing basketball together on a green court outside.",
             [[0.0, 8.0], [130.5, 150.0]], None, None, "highlight"),
        _rec("/data/qvh/NUi8pU2hfi0_60.0_210.0.mp4",
             "A man in a white shirt discusses the right to have and carry firearms.",
             [], None, None, "highlight"),
    ]


def test_qvhighlights_bad_window(tmp_path):
    src = tmp_path / "q.jsonl"
    src.write_text('{"qid": 1, "query": "q", "vid": "v_0.0_150.0", "duration": 150, '
                   '"relevant_windows": [[10, 2]]}\n{"qid": 2}\n')
    with pytest.raises(ValueError, match="ends before it starts"):
        adapters.qvhighlights(src)


def test_qvhighlights_missing_key_names_line(tmp_path):
    src = tmp_path / "q.jsonl"
    src.write_text('{"qid": 1, "query": "q", "vid": "v", "duration": 150}\n\n{"qid": 2, "vid": "w"}\n')
    with pytest.raises(ValueError, match=r"q\.jsonl:3: missing 'query'"):
        adapters.qvhighlights(src)


def test_mcq_lvbench_records():
    got = adapters.mcq(EVAL / "lvbench.json", video_dir="/data/lvbench")
    assert got == [
        _rec("/data/lvbench/sxb4XhZM5Jk.mp4", "What year appears in the opening caption of the video?",
             [[15.0, 19.0]], "1366", ["1636", "1366", "1363", "1633"], "key information retrieval"),
        _rec("/data/lvbench/sxb4XhZM5Jk.mp4", "What is the overall mood of the story?",
             [], "Melancholic", ["Cheerful", "Tense", "Melancholic", "Calm"], "summarization"),
    ]


def test_mcq_lvbench_jsonl_hours_and_default_kind(tmp_path):
    qa = {"uid": "u1", "question": "Who wins?\n(A) Red\n(B) Blue", "answer": "(b)",
          "time_reference": "1:02:03-1:02:10"}
    src = tmp_path / "meta.jsonl"
    src.write_text(json.dumps({"key": "k1", "qa": [qa]}) + "\n" + json.dumps({"key": "k2", "qa": []}) + "\n")
    got = adapters.mcq(src, video_ext=".mkv")
    assert got == [_rec("k1.mkv", "Who wins?", [[3723.0, 3730.0]], "Blue", ["Red", "Blue"], "mcq")]


@pytest.mark.parametrize("qa, message", [
    ({"uid": "u1", "question": "Who wins?\n(A) Red\n(B) Blue", "answer": "C"}, "u1: answer 'C' is not one of AB"),
    ({"uid": "u1", "question": "Who wins? Red or blue?", "answer": "A"}, "u1: expected options"),
    ({"uid": "u1", "question": "Who?\n(A) Red\n(B) Blue", "answer": "A", "time_reference": "soon"},
     "u1: time_reference 'soon'"),
    ({"uid": "u1", "question": "Who?\n(A) Red\n(C) Blue", "answer": "A"}, "lettered AC"),
])
def test_mcq_lvbench_malformed(tmp_path, qa, message):
    src = tmp_path / "lv.json"
    src.write_text(json.dumps([{"key": "k", "qa": [qa]}]))
    with pytest.raises(ValueError, match=message):
        adapters.mcq(src)


def test_mcq_mlvu_records():
    got = adapters.mcq(EVAL / "mlvu.json", video_dir="/data/mlvu/video")
    assert got == [
        _rec("/data/mlvu/video/movie101_66.mp4", "What color is the main male character in the video?", [],
             "Yellow", ["Yellow", "Red", "Green", "Blue"], "plotQA"),
        _rec("/data/mlvu/video/needle_32.mp4", "What does the hand coming out of the computer do?", [],
             "Delivers a product",
             ["Delivers a product", "Shakes hands with a person", "Takes a selfie", "Points at the screen"],
             "needle"),
    ]


def test_mcq_mlvu_answer_not_a_candidate(tmp_path):
    src = tmp_path / "m.json"
    src.write_text(json.dumps([{"video": "1.mp4", "question": "q", "candidates": ["a", "b"], "answer": "c"}]))
    with pytest.raises(ValueError, match=r"m\.json: item 0: answer 'c' is not one of the candidates"):
        adapters.mcq(src)


def test_mcq_unknown_shape(tmp_path):
    src = tmp_path / "x.json"
    src.write_text(json.dumps([{"foo": 1}]))
    with pytest.raises(ValueError, match="neither LVBench"):
        adapters.mcq(src)


def test_convert_writes_jsonl_loadable_by_dataset(tmp_path):
    from vdisc.evaluation import dataset

    out = tmp_path / "out" / "lvbench.jsonl"
    n = adapters.convert("mcq", EVAL / "lvbench.json", out, video_dir=tmp_path / "videos")
    assert n == 2
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert lines == adapters.mcq(EVAL / "lvbench.json", video_dir=(tmp_path / "videos").as_posix())
    items = dataset.load(out)
    assert [i.answer for i in items] == ["1366", "Melancholic"]
    assert items[0].video == str((tmp_path / "videos" / "sxb4XhZM5Jk.mp4").resolve())


def test_convert_relative_video_dir_becomes_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "c.jsonl"
    assert adapters.convert("charades_sta", EVAL / "charades_sta.txt", out, video_dir="vids") == 3
    first = json.loads(out.read_text().splitlines()[0])
    assert first["video"] == (tmp_path.resolve() / "vids" / "3MSZA.mp4").as_posix()


def test_convert_without_video_dir_keeps_bare_names(tmp_path):
    out = tmp_path / "q.jsonl"
    assert adapters.convert("qvhighlights", EVAL / "qvhighlights.jsonl", out) == 2
    assert [json.loads(x)["video"] for x in out.read_text().splitlines()] == [
        "bP5KfdFJzC4_660.0_810.0.mp4", "NUi8pU2hfi0_60.0_210.0.mp4"]


def test_convert_rejects_unknown_format_and_empty_input(tmp_path):
    with pytest.raises(ValueError, match="unknown format 'nope'"):
        adapters.convert("nope", EVAL / "mlvu.json", tmp_path / "o.jsonl")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(ValueError, match="no questions found"):
        adapters.convert("charades_sta", empty, tmp_path / "o.jsonl")
    assert not (tmp_path / "o.jsonl").exists()


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "vdisc.evaluation.adapters", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=60)


def test_cli_writes_jsonl_and_reports_count(tmp_path):
    out = tmp_path / "mlvu.jsonl"
    proc = _cli("mcq", EVAL / "mlvu.json", out, "--video-dir", "/data/mlvu")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"wrote 2 questions to {out}"
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["video"] for r in rows] == ["/data/mlvu/movie101_66.mp4", "/data/mlvu/needle_32.mp4"]
    assert rows == adapters.mcq(EVAL / "mlvu.json", video_dir="/data/mlvu")


def test_cli_video_ext(tmp_path):
    out = tmp_path / "c.jsonl"
    proc = _cli("charades_sta", EVAL / "charades_sta.txt", out, "--video-dir", "/v", "--video-ext", ".webm")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text().splitlines()[2])["video"] == "/v/AO8RW.webm"


@pytest.mark.parametrize("fmt, content, fragment", [
    ("charades_sta", "3MSZA 24.3 30.4 no separator\n", "bad:1: expected 'VIDEO_ID START END##sentence'"),
    ("qvhighlights", '{"qid": 1, "query": \n', "bad:1: not JSON"),
    ("mcq", '[{"video": "1.mp4", "question": "q", "candidates": ["a"], "answer": "a"}]', "at least two"),
])
def test_cli_malformed_input_one_line_exit_2(tmp_path, fmt, content, fragment):
    src = tmp_path / "bad"
    src.write_text(content)
    out = tmp_path / "out.jsonl"
    proc = _cli(fmt, src, out)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], proc.stderr
    assert not out.exists()


def test_cli_missing_file_and_bad_format(tmp_path):
    proc = _cli("mcq", tmp_path / "nope.json", tmp_path / "o.jsonl")
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {tmp_path / 'nope.json'}: no such annotation file"
    proc = _cli("youcook", tmp_path / "nope.json", tmp_path / "o.jsonl")
    assert proc.returncode == 2
    assert "invalid choice: 'youcook'" in proc.stderr


def test_one_line_jsonl_errors_name_the_line(tmp_path):
    src = tmp_path / "one.jsonl"
    src.write_text('\n{"qid": 1, "vid": "v", "duration": 150}\n')
    with pytest.raises(ValueError, match=r"one\.jsonl:2: missing 'query'"):
        adapters.qvhighlights(src)
