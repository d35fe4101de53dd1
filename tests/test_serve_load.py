"""`vdisc serve` under load: searches never wait for asks, and asks run in a bounded line.

The real server (``vdisc.serve.server``) runs on 127.0.0.1 in a thread of this process, over the talk
fixture's library, so that its asks can be made as slow as a chat model makes them: the offline planner
answers in well under a second here, a model's turns take seconds, and those seconds are where a reader
that waits for an ask would show. ``Thinking`` keeps each ask ``think`` seconds after each of its first two
observations, standing for the model reading them; tools, searches and answers are the real ones.
"""

from __future__ import annotations

import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from served import serving_in_thread, sse_events
from vdisc import Library

QUERIES = ["heavy rain", "umbrella", "pineapple", "soup", "football", "harbor sign", "rocket launch", "library"]
SEARCHES = 32  # at once, while two asks run
THINK = 2.5  # s an ask waits after each of its first THOUGHTS observations: >= 5 s left once one has come
THOUGHTS = 2


class Thinking(Library):
    """A Library whose asks take ``think`` seconds after each of their first two observations, as a chat
    model's turns would (the offline planner makes at least two tool calls on these questions)."""

    think = THINK

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.asked: list[str] = []
        self.ended: list[tuple[str, str, int]] = []  # (question, "answered" or the exception's name, observations)

    def ask(self, question: str, **kwargs: Any) -> Any:
        self.asked.append(question)
        on_event = kwargs.pop("on_event", None)
        seen = []

        def thinking(event: dict[str, Any]) -> None:
            if on_event is not None:
                on_event(event)
            if event.get("event") == "observation":
                seen.append(event)
                if len(seen) <= THOUGHTS:
                    time.sleep(self.think)

        try:
            answer = super().ask(question, on_event=thinking, **kwargs)
        except BaseException as exc:
            self.ended.append((question, type(exc).__name__, len(seen)))
            raise
        self.ended.append((question, "answered", len(seen)))
        return answer


@pytest.fixture(scope="module")
def library(talk_library):
    home, _ = talk_library
    lib = Thinking(home, device="cpu", notify=lambda m: None)
    lib.search("warm up")  # the text and visual models load once, before anything is timed
    return lib


class Ask(threading.Thread):
    """One /api/ask read to its end in a thread: each event with its arrival time; ``running`` once a tool ran."""

    def __init__(self, url: str, question: str) -> None:
        super().__init__(daemon=True)
        self.url, self.question = url, question
        self.events: list[tuple[float, str, dict[str, Any]]] = []
        self.running = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with httpx.Client(base_url=self.url, timeout=120) as c, \
                    c.stream("GET", "/api/ask", params={"q": self.question}) as r:
                assert r.status_code == 200, r.status_code
                for name, data in sse_events(r.iter_lines()):
                    self.events.append((time.monotonic(), name, data))
                    if name == "observation":
                        self.running.set()
        except BaseException as exc:  # noqa: BLE001 - the test reads it
            self.error = exc
        finally:
            self.running.set()

    def names(self) -> list[str]:
        return [e[1] for e in self.events]

    def ended(self) -> float:
        return self.events[-1][0]


def search_burst(url: str, n: int) -> list[tuple[float, float, int, int]]:
    """``n`` searches sent at once: (latency s, end time, status, hits) each."""
    gate = threading.Barrier(n)

    def one(i: int) -> tuple[float, float, int, int]:
        with httpx.Client(base_url=url, timeout=120) as c:
            gate.wait()
            t = time.monotonic()
            r = c.get("/api/search", params={"q": f"{QUERIES[i % len(QUERIES)]}", "top_k": 5})
            end = time.monotonic()
            hits = len(r.json()["result"]["hits"]) if r.status_code == 200 else 0
            return end - t, end, r.status_code, hits

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def p95(xs: list[float]) -> float:
    return statistics.quantiles(xs, n=20, method="inclusive")[-1]


def test_searches_do_not_wait_for_running_asks(library):
    with serving_in_thread(library, asks=2) as url:
        asks = [Ask(url, "When is a downpour forecast?"), Ask(url, "when is PINEAPPLE written?")]
        for a in asks:
            a.start()
        for a in asks:  # both running at once: the second did not wait for the first
            assert a.running.wait(60) and a.error is None, a.error
        assert all(a.is_alive() for a in asks), [a.names() for a in asks]
        burst = search_burst(url, SEARCHES)
        for a in asks:
            a.join(120)
    lat = [b[0] for b in burst]
    print(f"\n{SEARCHES} searches during 2 asks: p50 {statistics.median(lat) * 1000:.0f} ms, "
          f"p95 {p95(lat) * 1000:.0f} ms, max {max(lat) * 1000:.0f} ms")
    assert [b[2] for b in burst] == [200] * SEARCHES and all(b[3] > 0 for b in burst), burst
    for a in asks:
        assert a.error is None and not a.is_alive(), a.error
        assert a.names()[-1] == "answer" and "fail" not in a.names(), a.names()
    # every search was answered while both asks were still working: none of them waited for an ask
    first_answer = min(a.ended() for a in asks)
    assert max(b[1] for b in burst) < first_answer, (max(b[1] for b in burst) - first_answer, lat)


def test_asks_wait_in_line_then_are_refused(library, monkeypatch):
    monkeypatch.setattr(library, "think", 1.0)
    with serving_in_thread(library, asks=1, ask_queue=1) as url:
        first = Ask(url, "When is a downpour forecast?")
        first.start()
        assert first.running.wait(60) and first.error is None, first.error
        waiting = Ask(url, "when is PINEAPPLE written?")
        waiting.start()
        deadline = time.monotonic() + 30
        while not waiting.events and time.monotonic() < deadline:
            time.sleep(0.02)
        assert waiting.names()[:1] == ["queued"] and waiting.events[0][2]["position"] == 1, waiting.names()

        refused = Ask(url, "when is salt added?")  # one running, one in line: the line is full
        refused.start()
        refused.join(30)
        assert refused.names() == ["fail"], refused.names()
        assert refused.events[0][2]["message"].startswith("too many questions at once (1 being answered, 1 waiting)")
        assert first.is_alive()  # refused at once, not after a wait

        for a in (first, waiting):
            a.join(120)
            assert a.error is None and a.names()[-1] == "answer", (a.error, a.names())
        # in line until the first was answered, then answered in turn
        first_tool = next(t for t, name, _ in waiting.events if name == "tool")
        assert first_tool >= first.ended() - 0.05, (first_tool, first.ended())
    assert library.asked[-2:] == ["When is a downpour forecast?", "when is PINEAPPLE written?"]


def test_an_ask_whose_page_left_the_line_is_dropped(library, monkeypatch):
    monkeypatch.setattr(library, "think", 1.0)
    with serving_in_thread(library, asks=1) as url:
        first = Ask(url, "When is a downpour forecast?")
        first.start()
        assert first.running.wait(60) and first.error is None, first.error
        asked = len(library.asked)
        with httpx.Client(base_url=url, timeout=30) as c, \
                c.stream("GET", "/api/ask", params={"q": "when is salt added?"}) as r:
            lines = (line for line in r.iter_lines() if line)
            assert next(lines) == ": vdisc" and next(lines) == "event: queued"
        # the page went away while its question waited; the next one runs, the abandoned one never does
        after = Ask(url, "when is PINEAPPLE written?")
        after.start()
        for a in (first, after):
            a.join(120)
            assert a.error is None and a.names()[-1] == "answer", (a.error, a.names())
    assert library.asked[asked:] == ["when is PINEAPPLE written?"]


def test_a_running_ask_whose_page_went_away_stops(library, monkeypatch):
    monkeypatch.setattr(library, "think", 1.0)
    question = "When is a downpour forecast?"
    with serving_in_thread(library, asks=1) as url:
        with httpx.Client(base_url=url, timeout=60) as c, c.stream("GET", "/api/ask", params={"q": question}) as r:
            names = (name for name, _ in sse_events(r.iter_lines()))
            assert "observation" in names  # read up to its first observation, then the page goes away
        deadline = time.monotonic() + 60
        while not any(q == question for q, _, _ in library.ended) and time.monotonic() < deadline:
            time.sleep(0.05)
        # the same question, its page staying, runs on to an answer with more steps
        whole = Ask(url, question)
        whole.start()
        whole.join(120)
        assert whole.error is None and whole.names()[-1] == "answer", (whole.error, whole.names())
    stopped, answered = [e for e in library.ended if e[0] == question][-2:]
    assert stopped[1] == "_PageGone" and answered[1] == "answered", library.ended
    assert stopped[2] < answered[2], library.ended  # it stopped early: fewer observations than a whole ask


def test_requests_arriving_together_load_a_model_once(monkeypatch):
    """The server's first requests come at once; each model they need is loaded by one of them, for all."""
    from vdisc.config import Settings
    from vdisc.index import models

    loads = []

    def slow_load(reg, ref):
        loads.append(ref)
        time.sleep(0.3)  # long enough for every thread to arrive while it loads
        return object()

    monkeypatch.setitem(models._LOADERS, "text", slow_load)
    registry = models.Registry(Settings.load(models={"text": "some-text-model"}))
    gate = threading.Barrier(16)

    def first_use(_: int) -> Any:
        gate.wait()
        return registry.get("text")

    with ThreadPoolExecutor(16) as pool:
        got = list(pool.map(first_use, range(16)))
    assert loads == ["some-text-model"] and all(m is got[0] for m in got)
