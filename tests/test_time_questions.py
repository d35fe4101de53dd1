"""Questions relative to time: --last, order earliest/latest, and the offline planner's time words.

The repeated-word fixture is generated here: a 50 s video in which LIGHTHOUSE
is shown three times (first with a second line, then alone, then with another
line), so plain relevance prefers the middle one and only the time order
picks the first or the last.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vdisc import ConfigError, Library
from vdisc.agent.offline import content, phrasings
from vdisc.agent.timewords import parse_time as temporal
from vdisc.tools.search import parse_duration

from test_cli import vdisc

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")
SIZE, FPS, DURATION = (320, 180), 8, 50.0
GREY, BLUE, GREEN, PURPLE = (60, 60, 60), (30, 60, 170), (30, 140, 60), (130, 40, 140)
# (start, end, background, lines shown)
SEGMENTS = [
    (0, 4, GREY, []), (4, 10, BLUE, ["LIGHTHOUSE", "OPEN DAILY"]), (10, 14, GREY, []),
    (14, 19, GREEN, ["MARKET SQUARE"]), (19, 22, GREY, []), (22, 28, BLUE, ["LIGHTHOUSE"]), (28, 32, GREY, []),
    (32, 37, PURPLE, ["TRAIN STATION"]), (37, 40, GREY, []), (40, 46, BLUE, ["LIGHTHOUSE", "EVENING TOURS"]),
    (46, 50, GREY, []),
]
FIRST, MIDDLE, LAST = (4.0, 10.0), (22.0, 28.0), (40.0, 46.0)


def _picture(background: tuple[int, int, int], lines: list[str]) -> np.ndarray:
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(str(FONT), 28) if FONT.exists() else ImageFont.load_default(size=28)
    img = Image.new("RGB", SIZE, background)
    draw = ImageDraw.Draw(img)
    for i, line in enumerate(lines):
        y = SIZE[1] // 2 + (i - (len(lines) - 1) / 2) * 40
        draw.text((SIZE[0] // 2, y), line, font=font, fill=(255, 255, 255), anchor="mm")
    return np.asarray(img)


def make_repeats_video(path: Path) -> Path:
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
        for start, end, bg, lines in SEGMENTS:
            rgb = _picture(bg, lines)
            for _ in range(int((end - start) * FPS)):
                out.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        out.mux(stream.encode())
    return path


@pytest.fixture(scope="module")
def repeats_library(tmp_path_factory, test_models):
    home = tmp_path_factory.mktemp("repeats-lib")
    video = make_repeats_video(home.parent / "repeats.mp4")
    (report,) = Library(home, device="cpu", models={**test_models, "asr": "none"}).index(video)
    assert report.status == "indexed", report.reason
    return home


def _near(span: tuple[float, float], truth: tuple[float, float], tol: float = 1.5) -> bool:
    return abs(span[0] - truth[0]) <= tol and abs(span[1] - truth[1]) <= tol


# ---- durations ------------------------------------------------------------------------
@pytest.mark.parametrize("text,seconds", [("10m", 600), ("90s", 90), ("1h30m", 5400), ("2h", 7200), ("45", 45),
                                          (" 1h 5m ", 3900), ("1.5h", 5400), ("1d", 86400), (120, 120)])
def test_durations_parse(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "10x", "m", "-5", "0", "1h1h", "5m10", "ten minutes", "1:30"])
def test_bad_durations_are_one_line_errors(text):
    with pytest.raises(ConfigError, match="bad duration") as info:
        parse_duration(text)
    assert "\n" not in str(info.value)


# ---- the planner's reading of time words ----------------------------------------------------
@pytest.mark.parametrize("question,order,last,after,text", [
    ("When is LIGHTHOUSE shown for the first time?", "earliest", None, None, "LIGHTHOUSE"),
    ("when did the rain begin", "earliest", None, None, "the rain"),
    ("Initially, which sign was on screen?", "earliest", None, None, "which sign"),
    ("show me the earliest rocket launch", "earliest", None, None, "the rocket launch"),
    ("When was LIGHTHOUSE shown most recently?", "latest", None, None, "LIGHTHOUSE"),
    ("the last time the harbor sign appears", "latest", None, None, "the harbor sign"),
    ("what is on the screen right now", "latest", None, None, "what"),
    ("has anyone talked about rain lately", "latest", None, None, "has anyone rain"),
    ("what was said about rain in the last 10 minutes", "relevance", 600, None, "what about rain"),
    ("Anything about rockets in the past hour?", "relevance", 3600, None, "Anything about rockets"),
    ("over the last half hour, were rockets mentioned", "relevance", 1800, None, "rockets"),
    ("since 10 minutes ago, did anyone talk about umbrellas", "relevance", 600, None, "anyone umbrellas"),
    ("in the past 2h30m, was the harbor shown", "relevance", 9000, None, "the harbor"),
    ("when was the harbor shown since 1:20", "relevance", None, 80, "the harbor"),
    ("since 5 minutes in, when is rain mentioned", "relevance", None, 300, "rain"),
    ("when is the lighthouse shown for the last time in the last 20 seconds", "latest", 20, None,
     "the lighthouse"),
    ("When does the cook season the broth?", "relevance", None, None, "the cook season the broth"),
])
def test_time_words_become_search_arguments(question, order, last, after, text):
    hint = temporal(question)
    assert (hint.order, hint.last, hint.after) == (order, last, after), hint
    assert content(question) == text


def test_time_words_do_not_reach_the_search_queries():
    assert phrasings("When is LIGHTHOUSE shown for the first time?") == ["LIGHTHOUSE", "lighthouse"]
    queries = phrasings('when was "HARBOR 42" shown most recently, in the past hour')
    assert queries[0] == "HARBOR 42" and not any(w in q for q in queries for w in ("recent", "past", "hour"))


# ---- search: last and order -------------------------------------------------------------
def test_search_last_keeps_the_final_stretch(talk_library, talk_truth):
    home, _ = talk_library
    lib = Library(home)
    hits = lib.search("heavy rain umbrella", last=20).hits
    assert hits and all(h.end > 40.0 for h in hits)
    assert all(h.start >= 40.0 for h in hits if h.level == "video")  # the whole video is not "the last 20 s"
    assert hits[0].start < 46.4 and hits[0].end > 42.5  # the umbrella sentence is in it
    salt = lib.search("salt in the soup", last="20s", level="clip").hits
    assert all(h.start >= 40.0 or h.end > 40.0 for h in salt)
    assert not any(h.start < 4.3 and h.end > 1.0 for h in salt)  # said at 0:01, outside the window
    assert lib.search("salt in the soup", level="clip").hits[0].start < 4.3  # found without --last
    with pytest.raises(ConfigError, match="bad duration"):
        lib.search("rain", last="soon")
    with pytest.raises(ConfigError, match="order"):
        lib.search("rain", order="newest")


def test_search_order_picks_the_first_and_the_latest_occurrence(repeats_library):
    lib = Library(repeats_library)
    best = lib.search("LIGHTHOUSE", level="clip").hits[0]
    assert _near((best.start, best.end), MIDDLE, 2.0)  # by relevance: the one that shows it alone
    first = lib.search("LIGHTHOUSE", order="earliest").hits
    latest = lib.search("LIGHTHOUSE", order="latest").hits
    assert _near((first[0].start, first[0].end), FIRST, 2.0), first[:3]
    assert _near((latest[0].start, latest[0].end), LAST, 2.0), latest[:3]
    assert [h.start for h in first] == sorted(h.start for h in first)
    assert [h.end for h in latest] == sorted((h.end for h in latest), reverse=True)
    assert {round(h.start) for h in first} == {round(h.start) for h in latest}  # the same hits, both ways
    assert not any(h.level in ("scene", "video") and h.start <= FIRST[0] and h.end >= FIRST[1] for h in first)


# ---- the offline planner ---------------------------------------------------------------
@pytest.mark.parametrize("question,truth", [
    ("When is LIGHTHOUSE shown for the first time?", FIRST),
    ("When was LIGHTHOUSE shown most recently?", LAST),
    ("when does the LIGHTHOUSE sign appear for the last time", LAST),
    ("Was the word LIGHTHOUSE on screen in the last 15 seconds?", LAST),
    ("When is LIGHTHOUSE shown since 0:15, the first time?", MIDDLE),
])
def test_offline_planner_answers_time_questions(repeats_library, question, truth):
    answer = Library(repeats_library).ask(question)
    assert answer.spans, answer.answer
    top = answer.spans[0]
    assert _near((top.start, top.end), truth), (question, top, answer.answer)


@pytest.mark.parametrize("window,args,truth", [
    ("between 0:35 and 0:50", {"within": (35.0, 50.0)}, LAST),
    ("in the first 15 seconds", {"within": (0.0, 15.0)}, FIRST),
    ("before 0:15", {"before": 15.0}, FIRST),
    ("after 0:35", {"after": 35.0}, LAST),
])
def test_a_window_restricts_every_search_and_the_answer(repeats_library, window, args, truth):
    lib = Library(repeats_library)
    plain = lib.ask("When is LIGHTHOUSE shown?")
    assert plain.spans and _near((plain.spans[0].start, plain.spans[0].end), MIDDLE), plain.answer
    answer = lib.ask(f"When is LIGHTHOUSE shown {window}?")
    searches = [step for step in answer.trace if step.get("tool") == "search"]
    assert searches and all({k: step["args"].get(k) for k in args} == args for step in searches), searches
    lo, hi = args.get("within", (args.get("after", 0.0), args.get("before", DURATION)))
    assert answer.spans, answer.answer
    for span in answer.spans:  # every span lies in the window, and the top one is the occurrence inside it
        assert lo - 1e-6 <= span.start < span.end <= hi + 1e-6, (span, answer.answer)
    assert _near((answer.spans[0].start, answer.spans[0].end), truth), answer.answer
    for step in answer.trace:  # inspected and grounded windows are clamped to it
        if step.get("tool") == "inspect":
            assert lo <= step["args"]["start"] and step["args"]["end"] <= hi, step


@pytest.mark.parametrize("question,truth", [
    ("When is LIGHTHOUSE shown for the second time?", MIDDLE),
    ("When is LIGHTHOUSE shown for the third time?", LAST),
    ("When is LIGHTHOUSE shown for the second-to-last time?", MIDDLE),
    ("When is LIGHTHOUSE shown for the second time since 0:15?", LAST),
])
def test_ordinals_pick_the_nth_occurrence(repeats_library, question, truth):
    answer = Library(repeats_library).ask(question)
    assert answer.spans and len(answer.spans) == 1, answer.answer
    assert _near((answer.spans[0].start, answer.spans[0].end), truth), (question, answer.spans, answer.answer)


def test_a_window_without_the_moment_is_not_found(repeats_library):
    answer = Library(repeats_library).ask("When is LIGHTHOUSE shown between 0:11 and 0:20?")
    assert not answer.spans and answer.answer == "not found", answer.answer
    assert answer.explanation.startswith("Not found"), answer.explanation
    searches = [step for step in answer.trace if step.get("tool") == "search"]
    assert searches and all(tuple(step["args"]["within"]) == (11.0, 20.0) for step in searches)


def test_an_occurrence_that_is_not_there_is_not_found(repeats_library):
    answer = Library(repeats_library).ask("When is LIGHTHOUSE shown for the fourth time?")
    assert not answer.spans and answer.answer == "not found" and "only 3" in answer.explanation, answer.explanation


def test_right_after_an_on_screen_anchor(repeats_library):
    answer = Library(repeats_library).ask("What is shown right after the TRAIN STATION sign?")
    assert answer.spans and _near((answer.spans[0].start, answer.spans[0].end), LAST), answer.answer
    assert "LIGHTHOUSE" in answer.explanation and "TRAIN" in answer.explanation  # the target, after the anchor
    assert answer.answer == "LIGHTHOUSE", answer.answer  # the short answer: the line shown


def test_ask_last_limits_every_search(repeats_library):
    lib = Library(repeats_library)
    answer = lib.ask("When is LIGHTHOUSE shown?", last="15s")
    assert answer.spans and _near((answer.spans[0].start, answer.spans[0].end), LAST)
    searches = [step for step in answer.trace if step.get("tool") == "search"]
    assert searches and all(step["args"]["last"] == 15.0 for step in searches)


# ---- the CLI ---------------------------------------------------------------------------
def test_cli_last_and_order(repeats_library):
    import json

    r = vdisc("search", "LIGHTHOUSE", "--library", str(repeats_library), "--last", "15s", "--json")
    assert r.returncode == 0, r.stderr
    hits = json.loads(r.stdout)["hits"]
    assert hits and all(h["end"] > DURATION - 15 for h in hits)
    r = vdisc("search", "LIGHTHOUSE", "--library", str(repeats_library), "--order", "earliest", "--json")
    assert r.returncode == 0, r.stderr
    assert _near((json.loads(r.stdout)["hits"][0]["start"], json.loads(r.stdout)["hits"][0]["end"]), FIRST, 2.0)
    for cmd in (["search", "LIGHTHOUSE"], ["ask", "when is LIGHTHOUSE shown?"]):
        for bad in ("10x", "0", "-3m"):
            r = vdisc(*cmd, "--library", str(repeats_library), "--last", bad)
            assert r.returncode != 0 and "Traceback" not in r.stderr, (cmd, bad, r.stderr)
            assert len(r.stderr.strip().splitlines()) == 1 and "duration" in r.stderr, r.stderr


# ---- counting occurrences (issue 13, part 2) ---------------------------------------------
@pytest.mark.parametrize("question", ["How many times does the LIGHTHOUSE sign appear?",
                                      "how often is LIGHTHOUSE on screen in this clip"])
def test_how_many_times_counts_three_occurrences(repeats_library, question):
    answer = Library(repeats_library).ask(question)
    assert answer.answer == "3", (answer.answer, answer.explanation)
    assert "3 distinct moments" in answer.explanation
    # one span per occurrence, each the sign's own extent as indexed (the text track: its edges lie halfway
    # between the reads before and after them, so within half a read interval of the truth)
    spans = sorted((s.start, s.end) for s in answer.spans)
    assert len(spans) == 3 and all(_near(s, t, 0.5) for s, t in zip(spans, (FIRST, MIDDLE, LAST))), answer.spans
    searches = [step for step in answer.trace if step.get("tool") == "search"]
    assert searches and all(step["args"]["order"] == "earliest" for step in searches)


def test_how_many_times_inside_a_window_counts_only_there(repeats_library):
    answer = Library(repeats_library).ask("How many times is LIGHTHOUSE shown after 0:15?")
    assert answer.answer == "2", (answer.answer, answer.explanation)


def test_what_is_shown_while_they_talk_is_the_fuller_line_over_the_stretch():
    """Two lines are read over the whole anchor: a stray mark read a little longer ("AA") and the sign; the
    sign is what is shown during it (a content-free target has no words to score them by)."""
    from vdisc.agent.offline import Focus, _open_pick

    inspected = {"start": 10.0, "end": 18.0, "spoken": [], "shown": [
        {"start": 11.0, "end": 18.0, "text": "AA", "score": 0.3},
        {"start": 13.0, "end": 16.0, "text": "ROOM 305", "score": 0.1},
        {"start": 16.5, "end": 18.0, "text": "PASSPORT CONTROL", "score": 0.2}]}  # mostly after the anchor
    pick = _open_pick(inspected, Focus(ref=(12.25, 16.33), pick="overlap"), "ocr")
    assert pick is not None and pick["text"] == "ROOM 305"


def _inspected(step: int, shown: list[tuple[float, float, str]], spoken: list[tuple[float, float, str]] = ()):
    from vdisc.agent.answer import Observation

    def lines(items):
        return [{"start": a, "end": b, "text": t, "score": 0.05} for a, b, t in items]

    return Observation(step=step, tool="inspect", args={}, result={
        "video": "v.mp4", "start": 200.0, "end": 220.0, "spoken": lines(spoken), "shown": lines(shown)})


def test_the_one_line_shown_over_a_placed_anchor_answers_what_it_shows():
    """"What document label appears while a cargo ship is described": the anchor placed the moment, the
    question's words match no line well ("label" vs "MANIFEST 88"), and the window shows one line: it."""
    from vdisc.agent.offline import Focus, _sole_line

    anchor = {"video": "v.mp4", "start": 210.2, "end": 214.3, "source": "speech", "relation": "during",
              "evidence": "A cargo ship delivered 4,000 bicycles."}
    focus = Focus(ref=(210.2, 214.3), pick="overlap", anchor=anchor)
    said = [(210.2, 214.3, anchor["evidence"])]
    one = [_inspected(8, [(211.0, 213.0, "MANIFEST 88"), (213.0, 214.0, "MANlFEST 88")], said)]
    pick = _sole_line(one, focus, "ocr")
    assert pick is not None and pick["text"] == "MANIFEST 88" and pick["step"] == 8 and pick["video"] == "v.mp4"
    # two different lines over it: the question's words would have to choose, and they did not
    assert _sole_line([_inspected(8, [(211.0, 213.0, "MANIFEST 88"), (212.0, 214.0, "BAY 217")], said)],
                      focus, "ocr") is None
    assert _sole_line([_inspected(8, [(200.0, 205.0, "BAY 217")], said)], focus, "ocr") is None  # not over it
    # the anchor's own line is never the answer, even when it is the only one of its channel there
    assert _sole_line(one, focus, "speech") is None


def test_an_anchor_needs_to_match_not_to_be_as_sure_as_an_answer(monkeypatch):
    """A question presupposes its anchor: a line that search calls a match places the window even below
    the "not found" cut; one below the match floor does not."""
    from vdisc.agent.answer import Observation
    from vdisc.agent.offline import ANCHOR_CONFIDENCE, OfflinePlanner
    from vdisc.tools.evidence import TEXT_MATCH, text_confidence

    planner = OfflinePlanner()
    planner.min_confidence = 0.3155
    assert ANCHOR_CONFIDENCE == text_confidence(TEXT_MATCH) < planner.min_confidence
    when = temporal("What label appears while a vessel unloading is described?")
    assert when.anchor is not None

    def ground(confidence: float) -> list[Observation]:
        return [Observation(step=1, tool="search", args={}, result={"hits": []}),
                Observation(step=2, tool="ground", args={}, result={
                    "video": "v.mp4", "start": 210.2, "end": 214.3, "source": "speech", "confidence": confidence,
                    "evidence": "A cargo ship delivered 4,000 bicycles."})]

    placed = planner._anchor(when, ground(0.25), None)
    assert placed["focus"].anchor is not None and placed["focus"].ref[0] <= 210.2
    loose = planner._anchor(when, ground(text_confidence(TEXT_MATCH - 0.01)), None)
    assert loose["focus"].anchor is None  # no anchor moment: the whole question is asked instead
