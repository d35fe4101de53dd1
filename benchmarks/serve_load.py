"""How does `vdisc serve` hold up when many searches come at once, alone and while asks run?

Indexes a video (the talk fixture unless --video) with the offline stack, starts the real `vdisc serve`
on 127.0.0.1 in its own process, and sends bursts of concurrent searches over HTTP from this one:

- alone: --rounds bursts of --searches searches sent at once
- with asks: the same bursts while --asks questions are answered all the time (each asker sends its next
  question as soon as its answer came, so that many asks run throughout)

and prints searches/s (searches over the bursts' wall time), p50 and p95 latency, and the errors (HTTP
statuses other than 200, asks ending in ``fail``), which should be none.

Usage: python benchmarks/serve_load.py [--video PATH] [--searches 32] [--rounds 3] [--asks 2]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

TALK = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "talk.mp4"
QUERIES = ["heavy rain", "umbrella", "pineapple", "soup", "football", "harbor sign", "rocket launch", "library",
           "salt", "zebra crossing", "sunday", "number 42", "island", "cleaning", "dawn", "goalkeeper"]
QUESTIONS = ["When is a downpour forecast?", "when is PINEAPPLE written?", "When does the cook season the broth?",
             "when does the keeper grab the football?", "when is the harbor sign shown?"]
ENV = {"VDISC_VISUAL_MODEL": "none", "VDISC_CAPTION_MODEL": "none", "HF_HUB_OFFLINE": "1",
       "TRANSFORMERS_OFFLINE": "1"}


def burst(url: str, n: int, round_: int) -> tuple[float, list[float], list[int]]:
    """``n`` searches sent at once: (wall seconds from the first sent to the last answered, latencies, statuses)."""
    gate = threading.Barrier(n)

    def one(i: int) -> tuple[float, float, int]:
        with httpx.Client(base_url=url, timeout=300) as c:  # made before the gate: not timed
            gate.wait()
            t = time.perf_counter()
            r = c.get("/api/search", params={"q": QUERIES[(i + round_) % len(QUERIES)], "top_k": 10})
            return t, time.perf_counter(), r.status_code

    with ThreadPoolExecutor(n) as pool:
        out = list(pool.map(one, range(n)))
    return max(x[1] for x in out) - min(x[0] for x in out), [x[1] - x[0] for x in out], [x[2] for x in out]


class Asker(threading.Thread):
    """Asks one question after another until stopped: durations, and events other than a clean answer."""

    def __init__(self, url: str, first: int) -> None:
        super().__init__(daemon=True)
        self.url, self.first = url, first
        self.stop, self.begun = threading.Event(), threading.Event()
        self.seconds: list[float] = []
        self.errors: list[str] = []

    def run(self) -> None:
        n = self.first
        with httpx.Client(base_url=self.url, timeout=300) as c:
            while not self.stop.is_set():
                q = QUESTIONS[n % len(QUESTIONS)]
                n += 1
                t = time.perf_counter()
                last = None
                with c.stream("GET", "/api/ask", params={"q": q}) as r:
                    if r.status_code != 200:
                        self.errors.append(f"HTTP {r.status_code}")
                        continue
                    for line in r.iter_lines():
                        if line.startswith("event: "):
                            last = line[len("event: "):]
                            self.begun.set()
                if last == "answer":
                    self.seconds.append(time.perf_counter() - t)
                else:
                    self.errors.append(f"{q!r} ended with {last}")


def measure(url: str, searches: int, rounds: int) -> dict[str, float]:
    walls, lat, statuses = [], [], []
    for i in range(rounds):
        wall, got, st = burst(url, searches, i)
        walls.append(wall)
        lat += got
        statuses += st
    return {"rate": len(lat) / sum(walls), "p50": statistics.median(lat),
            "p95": statistics.quantiles(lat, n=20, method="inclusive")[-1], "max": max(lat),
            "errors": sum(s != 200 for s in statuses)}


def start_server(home: Path, logs: Path) -> tuple[subprocess.Popen, str]:
    out = logs / "serve.stdout"
    with out.open("w") as fo, (logs / "serve.stderr").open("w") as fe:
        proc = subprocess.Popen([sys.executable, "-m", "vdisc.cli", "serve", "--library", str(home), "--port", "0",
                                 "--offline"], stdout=fo, stderr=fe, env={**os.environ, **ENV})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"vdisc serve exited: {(logs / 'serve.stderr').read_text()[-2000:]}")
        m = re.search(r"at (http://\S+/) ", out.read_text())
        if m:
            try:
                httpx.get(m.group(1) + "api/videos", timeout=5).raise_for_status()
                return proc, m.group(1)
            except httpx.HTTPError:
                pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("vdisc serve did not answer in 120 s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", type=Path, default=TALK)
    ap.add_argument("--searches", type=int, default=32, help="searches sent at once")
    ap.add_argument("--rounds", type=int, default=3, help="bursts per measurement")
    ap.add_argument("--asks", type=int, default=2, help="asks kept running during the second measurement")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "vdisc-bench")
    args = ap.parse_args()
    os.environ.update(ENV)
    load = os.getloadavg()[0]  # other work on the machine slows every figure
    home = args.work / f"serve-lib-{args.video.stem}"
    home.mkdir(parents=True, exist_ok=True)

    from vdisc import Library

    lib = Library(home, device="cpu", offline=True, models={"visual": "none", "caption": "none"},
                  notify=lambda m: None)
    (rep,) = lib.index(args.video)
    print(f"library: {args.video.name} ({rep.duration:.0f} s, {rep.clips} clips; {rep.status}) at {home}")
    proc, url = start_server(home, home)
    try:
        httpx.get(url + "api/search", params={"q": "warm up"}, timeout=300).raise_for_status()
        with httpx.Client(base_url=url, timeout=300) as c, c.stream("GET", "/api/ask", params={"q": QUESTIONS[0]}) as r:
            for _ in r.iter_lines():  # the ask's models load before anything is timed
                pass
        alone = measure(url, args.searches, args.rounds)
        askers = [Asker(url, i) for i in range(args.asks)]
        for a in askers:
            a.start()
        for a in askers:
            a.begun.wait(300)
        busy = measure(url, args.searches, args.rounds)
        for a in askers:
            a.stop.set()
        for a in askers:
            a.join(300)
    finally:
        proc.terminate()
        proc.wait(30)
    asked = [s for a in askers for s in a.seconds]
    ask_errors = [e for a in askers for e in a.errors]
    cores = os.cpu_count()
    print(f"\n{args.searches} concurrent searches x {args.rounds} rounds on {cores} CPU cores "
          f"(load average before: {load:.1f})\n")
    print("| searches | searches/s | p50 | p95 | max | errors |\n|---|---|---|---|---|---|")
    for name, m in (("alone", alone), (f"while {args.asks} asks run", busy)):
        print(f"| {name} | {m['rate']:.0f} | {m['p50'] * 1000:.0f} ms | {m['p95'] * 1000:.0f} ms | "
              f"{m['max'] * 1000:.0f} ms | {m['errors']} |")
    if asked:
        print(f"\nasks answered meanwhile: {len(asked)}, median {statistics.median(asked):.2f} s each; "
              f"ask errors: {len(ask_errors)} {ask_errors[:3]}")
    print(json.dumps({"alone": alone, "with_asks": busy, "asks": len(asked), "ask_errors": ask_errors}))


if __name__ == "__main__":
    main()
