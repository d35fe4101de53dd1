"""`vdisc eval --replay` reproduces a run against the real llama.cpp server without the server (issue 14, part 8).

The fixture (tests/fixtures/llm_replay/) was recorded by ``python tests/record_llm_replay.py``: two
questions on talk.mp4 asked through the LLM planner of SmolLM2-135M on llama-cpp-python's server,
``vdisc eval --planner llm --replay``. Here no server runs (the recorded base URL is on a port nothing
listens on), so any reply missing from the file is an error in the records, and the records must be
the recorded ones exactly (latency aside). A change to the prompts, the tool-message format or the
budgets changes what the model would be sent: re-record then.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from test_cli import vdisc

FIXTURES = Path(__file__).parent / "fixtures"
HERE = FIXTURES / "llm_replay"
QUESTIONS = HERE / "questions.jsonl"
REPLAY = HERE / "smollm2.replay.jsonl"
RECORDS = HERE / "smollm2.records.jsonl"
# the library the run was recorded on: no visual model, so every model's identity is a bundled one
# (tool results are replayed by the library's videos and models, which must be the same here)
MODELS = {"visual": "none", "text": "all-MiniLM-L6-v2", "asr": "tiny.en", "ocr": "rapidocr", "caption": "none"}
MODEL = "llama3.1:8b"  # any name: llama.cpp answers with its one model
BASE_URL = "http://127.0.0.1:8079/v1"  # where the recording server listened; part of each reply's key
MAX_STEPS = 3
RERECORD = "re-record with: python tests/record_llm_replay.py"


def eval_args(library: Path, replay: Path, out: Path) -> list[str]:
    return ["eval", str(QUESTIONS), "--library", str(library), "--planner", "llm", "--max-steps", str(MAX_STEPS),
            "--replay", str(replay), "--out", str(out), "--json"]


def eval_env() -> dict[str, str]:
    return {"VDISC_LLM_MODEL": MODEL, "VDISC_LLM_BASE_URL": BASE_URL, "VDISC_LLM_API_KEY": "none",
            "NO_PROXY": "127.0.0.1,localhost", "OPENAI_API_KEY": "", "OPENAI_BASE_URL": ""}


def comparable(records: list[dict]) -> list[dict]:
    """Records as they must repeat: without the latency, the video by file name (the checkout's path differs)."""
    return [{**{k: v for k, v in r.items() if k != "latency"}, "video": Path(r["video"]).name} for r in records]


def read_records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def replay_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from vdisc import Library

    home = tmp_path_factory.mktemp("replay-lib")
    (report,) = Library(home, device="cpu", models=MODELS).index(FIXTURES / "talk.mp4")
    assert report.status == "indexed", report.reason
    return home


def test_vdisc_eval_replay_reproduces_the_recorded_run(replay_library, tmp_path):
    replay = tmp_path / "replay.jsonl"
    shutil.copy(REPLAY, replay)  # a miss would append to the file: the committed one stays as recorded
    out = tmp_path / "records.jsonl"
    r = vdisc(*eval_args(replay_library, replay, out), env=eval_env())
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    got, want = comparable(read_records(out)), comparable(read_records(RECORDS))
    errors = [g["error"] for g in got if g.get("error")]
    assert not errors, f"{errors}: a reply was missing from the replay file; {RERECORD}"
    assert got == want, RERECORD
    assert replay.read_bytes() == REPLAY.read_bytes()  # nothing was asked anew: every reply came from the file
    # the recorded run made real tool calls through the server (what the replay reproduces)
    assert all(g["tool_calls"] >= 1 for g in got)
