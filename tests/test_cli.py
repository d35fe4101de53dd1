"""The `vdisc` console script as a user runs it: real subprocesses, real exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FIXTURES


def vdisc(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "vdisc.cli", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout)


def test_help_is_fast_and_does_not_import_torch():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from vdisc.cli import app\n"
        "r = CliRunner().invoke(app, ['--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        "assert 'index' in r.output and 'search' in r.output\n"
        "heavy = [m for m in ('torch', 'faiss', 'open_clip', 'transformers', 'av') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_search_json_matches_the_schema(talk_library):
    home, _ = talk_library
    r = vdisc("search", "heavy rain expected", "--library", str(home), "--json", "--top-k", "5")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert set(data) == {"query", "hits"} and data["query"] == "heavy rain expected"
    assert 1 <= len(data["hits"]) <= 5
    types = {"video": str, "video_id": int, "level": str, "start": float, "end": float, "score": float,
             "snippet": str}
    for hit in data["hits"]:
        assert set(hit) == set(types)
        for key, typ in types.items():
            assert isinstance(hit[key], typ) or (typ is float and isinstance(hit[key], int)), (key, hit[key])
        assert hit["level"] in ("video", "scene", "clip", "event", "frame")
        assert 0 <= hit["start"] <= hit["end"]
    assert data["hits"][0]["video"] == "talk.mp4"
    assert "umbrella" in data["hits"][0]["snippet"].lower()


def test_search_table_and_ls(talk_library):
    home, _ = talk_library
    r = vdisc("search", "pineapple", "--library", str(home))
    assert r.returncode == 0, r.stderr
    assert "talk.mp4" in r.stdout and "PINEAPPLE" in r.stdout
    r = vdisc("ls", "--library", str(home), "--json")
    assert r.returncode == 0, r.stderr
    (entry,) = json.loads(r.stdout)
    assert entry["name"] == "talk.mp4" and entry["clips"] >= 7 and entry["status"] == "done"
    assert set(entry["channels"]) == {"speech", "visual", "ocr"}


def _one_line_error(r: subprocess.CompletedProcess) -> str:
    assert r.returncode != 0
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    return lines[0]


def test_user_errors_are_one_line(tmp_path: Path):
    line = _one_line_error(vdisc("index", str(tmp_path / "missing.mp4"), "--library", str(tmp_path / "l")))
    assert "missing.mp4" in line and "no such file" in line
    line = _one_line_error(vdisc("search", "anything", "--library", str(tmp_path / "empty")))
    assert "no library" in line
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is not a video\n")
    line = _one_line_error(vdisc("index", str(fake), "--library", str(tmp_path / "l"), "--quiet"))
    assert "notes.mp4" in line
    line = _one_line_error(vdisc("index", str(fake), "--device", "tpu", "--library", str(tmp_path / "l")))
    assert "device" in line
    line = _one_line_error(vdisc("serve", "--asks", "0", "--library", str(tmp_path / "l")))
    assert "--asks" in line


def test_bad_search_options_are_one_line(talk_library):
    home, _ = talk_library
    line = _one_line_error(vdisc("search", "x", "--library", str(home), "--level", "chapter"))
    assert "unknown level" in line
    line = _one_line_error(vdisc("search", "x", "--library", str(home), "--video", "other.mp4"))
    assert "other.mp4" in line


@pytest.mark.parametrize("debug", ["1"])
def test_debug_shows_the_traceback(tmp_path: Path, debug: str):
    r = vdisc("search", "anything", "--library", str(tmp_path / "empty"), env={"VDISC_DEBUG": debug})
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_index_cli_with_json_and_a_folder(tmp_path: Path, tiny_clip_dir: Path):
    folder = tmp_path / "vids"
    folder.mkdir()
    (folder / "a b é.mp4").write_bytes((FIXTURES / "silent.mp4").read_bytes())
    (folder / "readme.txt").write_text("not a video")
    lib = str(tmp_path / "lib")
    args = ["index", str(folder), "--library", lib, "--json", "--visual-model", f"local-dir:{tiny_clip_dir}",
            "--asr-model", "none", "--ocr-model", "none"]
    r = vdisc(*args)
    assert r.returncode == 0, r.stderr
    (report,) = json.loads(r.stdout)
    assert report["status"] == "indexed" and report["path"].endswith("a b é.mp4")
    assert report["channels"] == ["visual"]
    r = vdisc(*args)
    assert json.loads(r.stdout)[0]["status"] == "unchanged"


def test_info_reports_models_and_decoders(tmp_path: Path):
    r = vdisc("info", "--library", str(tmp_path / "lib"), "--json", "--load", "--offline",
              "--visual-model", "none", "--asr-model", "tiny.en")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["device"] == "cpu"
    assert data["decoders"]["pyav"] is None
    models = data["models"]
    assert models["visual"]["state"] == "off"
    assert models["asr"]["state"] == "ready" and models["asr"]["spec"]["source"] == "bundled"
    assert models["text"]["spec"]["dim"] == 384
    assert models["caption"]["state"] == "off"


def test_compact_keeps_search_results(tmp_path: Path, talk_library):
    import shutil

    home = tmp_path / "lib"
    shutil.copytree(talk_library[0], home)
    before = json.loads(vdisc("search", "heavy rain expected", "--library", str(home), "--json").stdout)
    r = vdisc("compact", "--library", str(home), "--json", "--merge-size", "1000")
    assert r.returncode == 0, r.stderr
    reports = json.loads(r.stdout)
    assert {x["index"] for x in reports} >= {"clip.speech", "clip.ocr"}
    assert all(x["segments_after"] <= x["segments_before"] for x in reports)
    after = json.loads(vdisc("search", "heavy rain expected", "--library", str(home), "--json").stdout)
    assert after == before
    assert "--merge-size" in _one_line_error(vdisc("compact", "--library", str(home), "--merge-size", "0"))
