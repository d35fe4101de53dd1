"""Time language, parsed once (agent/timewords): the grammar, and anchored questions answered on real libraries.

Anchored questions run on the talk fixture (tests/fixtures/talk.json has its
truth) and on a copy of it with one word burned in while a sentence is spoken
(``LANTERN`` during "The old library closes every Sunday for cleaning."), so
the anchor and the target are always in different channels.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from vdisc import Library
from vdisc.agent.offline import RIGHT_AFTER_SECONDS, DURING_PAD, anchor_focus, content, phrasings
from vdisc.agent.timewords import AT_PAD, parse_time

FIXTURES = Path(__file__).parent / "fixtures"
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")
TOL = 1.5  # seconds an answered span may differ from the truth at each end


def _near(span: tuple[float, float], truth: tuple[float, float], tol: float = TOL) -> bool:
    return abs(span[0] - truth[0]) <= tol and abs(span[1] - truth[1]) <= tol


def _truth(talk_truth: dict, channel: str, key: str) -> tuple[float, float]:
    item = next(x for x in talk_truth[channel] if key.lower() in x["text"].lower())
    return item["start"], item["end"]


# ---- the grammar: question -> fields ---------------------------------------------------------
WINDOWS = [
    # absolute windows: after / before / within, clock times, marks, number words
    ("when is the harbor shown after 1:20", {"after": 80.0, "text": "when is the harbor shown"}),
    ("when is the harbor shown after 1:02:03", {"after": 3723.0}),
    ("since 1:20, is rain mentioned", {"after": 80.0, "text": "is rain mentioned"}),
    ("from minute 5 on, is rain mentioned", {"after": 300.0, "text": "is rain mentioned"}),
    ("what is shown after ninety seconds", {"after": 90.0}),
    ("after 1 minute 20 seconds, what is shown", {"after": 80.0}),
    ("after 1m30s what is said", {"after": 90.0}),
    ("what is said right after minute 2", {"after": 120.0, "text": "what is said"}),
    ("before the 5 minute mark, is rain mentioned", {"before": 300.0, "text": "is rain mentioned"}),
    ("until 2:00 what is said", {"before": 120.0}),
    ("by 1:30 was the sign shown", {"before": 90.0, "text": "was the sign shown"}),
    ("what is said between 1:00 and 2:00", {"within": (60.0, 120.0), "text": "what is said"}),
    ("from 0:30 to 1:10 what is shown", {"within": (30.0, 70.0)}),
    ("what is said from 0:30 until 1:10", {"within": (30.0, 70.0)}),
    ("what is shown 1:00-2:00", {"within": (60.0, 120.0)}),
    ("when is rain mentioned between 1 and 2 minutes", {"within": (60.0, 120.0), "text": "when is rain mentioned"}),
    ("when is rain mentioned after 1:00 and before 2:00", {"within": (60.0, 120.0), "text": "when is rain mentioned"}),
    ("between 2:00 and 1:00, is rain mentioned", {"within": (60.0, 120.0)}),  # reversed ends are read in order
    ("what is shown in the first 20 seconds", {"within": (0.0, 20.0), "text": "what is shown"}),
    ("in the first two and a half minutes, what is said", {"within": (0.0, 150.0)}),
    ("what is said during the opening minute", {"within": (0.0, 60.0), "anchor": None}),
    ("what is shown at 0:25", {"at": 25.0, "within": (25.0 - AT_PAD, 25.0 + AT_PAD)}),
    ("what is shown five minutes in", {"at": 300.0}),
    ("what is said twenty-five seconds in", {"at": 25.0}),
    ("what is shown 2:00 into the video", {"at": 120.0, "text": "what is shown"}),
    ("what is shown at the 2 minute mark", {"at": 120.0}),
    ("when is the sign shown around 0:40", {"at": 40.0, "text": "when is the sign shown"}),
    # the final stretch of each video (the existing `last`), and order
    ("what was said about rain in the last 10 minutes", {"last": 600.0, "order": "relevance"}),
    ("what is said in the final minute", {"last": 60.0}),
    ("when is the lighthouse shown for the last time in the last 20 seconds", {"last": 20.0, "order": "latest"}),
    ("When is LIGHTHOUSE shown since 0:15, the first time?", {"after": 15.0, "order": "earliest"}),
]
OCCURRENCES = [
    ("when is LIGHTHOUSE shown for the second time", {"order": "earliest", "occurrence": 2,
                                                      "text": "when is LIGHTHOUSE shown"}),
    ("the third time they mention rain", {"order": "earliest", "occurrence": 3, "text": "they mention rain"}),
    ("when is rain mentioned for the 2nd time", {"occurrence": 2, "text": "when is rain mentioned"}),
    ("when is the bell heard a second time", {"occurrence": 2}),
    ("the second-to-last time the sign appears", {"order": "latest", "occurrence": 2, "text": "the sign appears"}),
    ("the third time from the end they say it", {"order": "latest", "occurrence": 3}),
    ("the penultimate mention of rain", {"order": "latest", "occurrence": 2}),
    ("When is LIGHTHOUSE shown for the first time?", {"order": "earliest", "occurrence": None}),
]
ANCHORS = [
    ("what is shown right after the alarm rings", "right_after", "the alarm rings", "what is shown"),
    ("what is said just before the title appears", "right_before", "the title appears", "what is said"),
    ("what is on screen while they talk about the rocket launch", "during", "they talk about the rocket launch",
     "what is on screen"),
    ("what is said during the cooking demo", "during", "the cooking demo", "what is said"),
    ("After the chef adds salt, what is shown?", "after", "the chef adds salt", "what is shown"),
    ("right after the alarm rings what is shown", "right_after", "the alarm rings", "what is shown"),
    ("what is on screen until the lights go out", "before", "the lights go out", "what is on screen"),
    ("what is said as soon as the door opens", "right_after", "the door opens", "what is said"),
    ("what has been said since the alarm rang", "after", "the alarm rang", "what has been said"),
    ("while they talk about rain which sign is shown", "during", "they talk about rain", "which sign is shown"),
]


@pytest.mark.parametrize("question,expected", WINDOWS + OCCURRENCES)
def test_time_expressions_become_fields(question, expected):
    q = parse_time(question)
    for field, value in expected.items():
        assert getattr(q, field) == value, (question, field, q)


@pytest.mark.parametrize("question,relation,anchor,text", ANCHORS)
def test_anchored_questions_split_into_anchor_and_target(question, relation, anchor, text):
    q = parse_time(question)
    assert q.anchor is not None, q
    assert (q.anchor.relation, q.anchor.text, q.text) == (relation, anchor, text)
    assert q.bounds() == (None, None) and q.last is None


def test_time_words_inside_the_anchor_choose_the_anchor_moment():
    q = parse_time("what is shown right after they mention rain for the second time, after 1:00")
    assert q.anchor is not None and (q.anchor.text, q.anchor.occurrence, q.anchor.order) == ("they mention rain", 2,
                                                                                            "earliest")
    assert q.occurrence is None and q.after == 60.0 and q.text == "what is shown"
    q = parse_time("what is said right before the sign is shown for the last time")
    assert q.anchor is not None and q.anchor.order == "latest" and q.order == "relevance"


@pytest.mark.parametrize("question", [
    "how many 5 dollar bills are shown",
    "when is the top 10 list shown",
    "when do between 5 and 10 people appear",
    "when does he say he waited 5 minutes",
    "when is a 5 minute break announced",
    "when do they say the 10:30 train leaves",
    "what happens in 2 minutes",
    'when does she say "call me after 5 minutes"',
    "when does she say 'see you at 1:20'",
    "when is 5 seconds of silence",
    "who comes in second place",
    "when does the second speaker talk",
    "when do they say the rain comes the day after tomorrow",
    "after that, what happens",
    "before long, what is shown",
    "what happens during the video",
])
def test_numbers_and_words_that_are_not_time_stay_content(question):
    q = parse_time(question)
    assert (q.bounds(), q.last, q.at, q.occurrence, q.anchor) == ((None, None), None, None, None, None), q
    assert q.order == "relevance" and q.text == question.strip(" ?")


def test_search_arguments_carry_the_window_and_the_order():
    assert parse_time("when is rain said between 1:00 and 2:00").search_args() == {"within": (60.0, 120.0)}
    assert parse_time("is rain said after 1:20").search_args() == {"after": 80.0}
    assert parse_time("is rain said before 0:30").search_args() == {"before": 30.0}
    assert parse_time("is rain said in the last 10 minutes").search_args() == {"last": 600.0}
    assert parse_time("the second time rain is said").search_args() == {"order": "earliest"}
    assert parse_time("the second-to-last time rain is said, after 0:10").search_args() == {"order": "latest",
                                                                                           "after": 10.0}


def test_time_words_never_reach_the_search_queries():
    assert content("what is said between 1:00 and 2:00 about rain") == "what about rain"
    assert phrasings("When is LIGHTHOUSE shown for the second time?") == ["LIGHTHOUSE", "lighthouse"]
    queries = phrasings('when is "HARBOR 42" shown after 0:20')
    assert queries[0] == "HARBOR 42" and not any(":" in q or "after" in q for q in queries)


def test_anchor_windows():
    found = {"video": "v.mp4", "start": 10.0, "end": 13.0, "source": "speech", "evidence": "rain"}

    def window(question: str) -> tuple[float | None, float | None, str]:
        q = parse_time(question)
        assert q.anchor is not None
        f = anchor_focus(q, q.anchor, found)
        return f.lo, f.hi, f.order

    assert window("what is shown right after they mention rain") == (13.0, 13.0 + RIGHT_AFTER_SECONDS, "earliest")
    assert window("what is shown after they mention rain") == (13.0, None, "earliest")
    assert window("what is shown right before they mention rain") == (0.0, 10.0, "latest")
    assert window("what is shown before they mention rain") == (None, 10.0, "latest")
    assert window("what is shown while they mention rain") == (10.0 - DURING_PAD, 13.0 + DURING_PAD, "relevance")
    assert window("what is shown right after they mention rain, before 0:20") == (13.0, 20.0, "earliest")
    assert window("the second time a sign is shown after they mention rain") == (13.0, None, "earliest")


# ---- anchored questions on real libraries -------------------------------------------------------
def _target_steps(answer) -> list[dict]:
    """The steps after the anchor's ground: the ones about the question's own moment."""
    steps = [s for s in answer.trace if "tool" in s]
    first_ground = next(i for i, s in enumerate(steps) if s["tool"] == "ground")
    return steps[first_ground + 1:]


def test_right_after_speech_answers_with_what_is_shown(talk_library, talk_truth):
    home, _ = talk_library
    answer = Library(home).ask("What is shown right after they talk about the rocket launch?")
    said, shown = _truth(talk_truth, "speech", "rocket"), _truth(talk_truth, "onscreen", "PINEAPPLE")
    assert answer.spans, answer.answer
    top = answer.spans[0]
    assert _near((top.start, top.end), shown), (top, answer.answer)  # the target, not the anchor
    assert top.start >= said[1] - TOL and "PINEAPPLE" in answer.explanation and "rocket" in answer.explanation
    assert "PINEAPPLE" in answer.answer and "rocket" not in answer.answer  # the short answer: the line shown
    steps = [s for s in answer.trace if "tool" in s]
    assert steps[0]["tool"] == "search" and "rocket" in steps[0]["args"]["query"]  # the anchor is searched first
    anchor = next(s for s in steps if s["tool"] == "ground")
    assert _near((anchor["moments"][0]["start"], anchor["moments"][0]["end"]), said)
    looks = [s for s in _target_steps(answer) if s["tool"] == "inspect"]
    assert looks and all(said[1] - TOL <= s["args"]["start"] and s["args"]["end"] <= said[1] + RIGHT_AFTER_SECONDS
                         + TOL for s in looks)


def test_right_before_text_answers_with_what_is_said(talk_library, talk_truth):
    home, _ = talk_library
    answer = Library(home).ask("What is said right before the zebra crossing sign appears?")
    sign, said = _truth(talk_truth, "onscreen", "ZEBRA"), _truth(talk_truth, "speech", "library")
    assert answer.spans and _near((answer.spans[0].start, answer.spans[0].end), said), answer.answer
    assert answer.spans[0].end <= sign[0] + TOL


def test_anchored_content_is_searched_inside_the_anchor_window(talk_library, talk_truth):
    home, _ = talk_library
    answer = Library(home).ask("When is the harbor sign shown after they mention the rocket launch?")
    said, harbor = _truth(talk_truth, "speech", "rocket"), _truth(talk_truth, "onscreen", "HARBOR")
    assert answer.spans and _near((answer.spans[0].start, answer.spans[0].end), harbor), answer.answer
    searches = [s for s in _target_steps(answer) if s["tool"] == "search"]
    assert searches and all(s["args"]["video"] == "talk.mp4" and abs(s["args"]["after"] - said[1]) <= TOL
                            and s["args"]["order"] == "earliest" for s in searches)


def make_during_video(path: Path, word: str, shown: tuple[float, float]) -> Path:
    """talk.mp4 with ``word`` burned in (white on a dark box) for ``shown`` seconds; audio re-encoded as is."""
    import av
    from PIL import ImageDraw, ImageFont

    font = ImageFont.truetype(str(FONT), 40) if FONT.exists() else ImageFont.load_default(size=40)
    with av.open(str(FIXTURES / "talk.mp4")) as src, av.open(str(path), "w") as out:
        vin, ain = src.streams.video[0], src.streams.audio[0]
        rate = int(vin.average_rate)
        vout = out.add_stream("libx264", rate=rate)
        vout.width, vout.height, vout.pix_fmt = vin.codec_context.width, vin.codec_context.height, "yuv420p"
        vout.options = {"preset": "ultrafast"}
        aout = out.add_stream("aac", rate=ain.codec_context.sample_rate, layout="mono")
        n = 0
        for frame in src.decode(vin, ain):
            if isinstance(frame, av.AudioFrame):
                frame.pts = None
                for packet in aout.encode(frame):
                    out.mux(packet)
                continue
            if shown[0] <= float(frame.time) < shown[1]:
                img = frame.to_image()
                w, h = img.size
                draw = ImageDraw.Draw(img)
                draw.rectangle((w // 2 - 110, h // 2 - 32, w // 2 + 110, h // 2 + 32), fill=(20, 20, 20))
                draw.text((w // 2, h // 2), word, font=font, fill=(255, 255, 255), anchor="mm")
                frame = av.VideoFrame.from_image(img)
            frame.pts, frame.time_base = n, Fraction(1, rate)
            n += 1
            for packet in vout.encode(frame):
                out.mux(packet)
        for packet in vout.encode():
            out.mux(packet)
        for packet in aout.encode():
            out.mux(packet)
    return path


LANTERN = (27.0, 29.0)  # inside "The old library closes every Sunday for cleaning." (26.5-29.66 s)


@pytest.fixture(scope="module")
def during_library(tmp_path_factory, test_models):
    home = tmp_path_factory.mktemp("during-lib")
    video = make_during_video(home.parent / "during.mp4", "LANTERN", LANTERN)
    (report,) = Library(home, device="cpu", models=test_models).index(video)
    assert report.status == "indexed", report.reason
    return home


def test_while_speech_answers_with_what_is_on_screen(during_library, talk_truth):
    answer = Library(during_library).ask("What is on screen while they talk about the library closing?")
    said = _truth(talk_truth, "speech", "library")
    assert answer.spans, answer.answer
    top = answer.spans[0]
    assert _near((top.start, top.end), LANTERN), (top, answer.answer)
    assert "LANTERN" in answer.explanation and "LANTERN" in answer.answer and len(answer.spans) == 1
    looks = [s for s in _target_steps(answer) if s["tool"] == "inspect"]
    assert looks and all(said[0] - DURING_PAD - TOL <= s["args"]["start"] and s["args"]["end"] <= said[1] + DURING_PAD
                         + TOL for s in looks)


def test_a_sign_up_longer_than_the_words_answers_with_the_time_both_hold(tmp_path, test_models, talk_truth):
    """BEACON is shown from 2.5 s before the library sentence to 2.3 s after it: "what is on screen while
    they say X" is answered with the moment both hold, the sentence's time, not the whole sign's."""
    said = _truth(talk_truth, "speech", "library")
    shown = (said[0] - 2.5, said[1] + 2.3)
    video = make_during_video(tmp_path / "beacon.mp4", "BEACON", shown)
    (report,) = Library(tmp_path / "lib", device="cpu", models=test_models).index(video)
    assert report.status == "indexed", report.reason
    answer = Library(tmp_path / "lib").ask("What is on screen while they talk about the library closing?")
    assert answer.spans and "BEACON" in answer.answer, answer.explanation
    top = answer.spans[0]
    assert _near((top.start, top.end), said, tol=0.5), (top, said, answer.explanation)


def test_nothing_shown_while_it_is_said_is_not_found(during_library):
    answer = Library(during_library).ask("What is on screen while the chef adds salt to the soup?")
    assert not answer.spans and answer.answer == "not found", answer.answer
    assert answer.explanation.startswith("Not found"), answer.explanation


def test_a_relation_word_that_is_content_asks_the_whole_question(talk_library, talk_truth):
    # "before the rain" finds the umbrella sentence itself: the target's words are in the anchor moment
    home, _ = talk_library
    answer = Library(home).ask("When do they say to bring an umbrella before the rain?")
    truth = _truth(talk_truth, "speech", "umbrella")
    assert answer.spans and _near((answer.spans[0].start, answer.spans[0].end), truth), answer.answer


def test_a_short_budget_on_an_anchored_question_says_where_it_stopped(talk_library):
    home, _ = talk_library
    answer = Library(home).ask("What is shown right after they talk about the rocket launch?", max_steps=4)
    assert answer.budget_exhausted and not answer.spans
    assert answer.answer == "not found", answer.answer
    assert answer.explanation.startswith("Not found") and "placed against" in answer.explanation, answer.explanation


@pytest.mark.parametrize("question,order,text", [
    ("When does the first aid sign appear?", "earliest", "When does the first aid sign appear"),
    ("What is the captain's last name?", "latest", "What is the captain's last name"),
    ("When is the logo shown last?", "latest", "When is the logo shown"),
    ("When is the bell rung for the first time?", "earliest", "When is the bell rung"),
])
def test_a_first_or_last_that_names_the_thing_stays_in_the_description(question, order, text):
    """"first aid", "last name": the order word also names the thing, and cutting it would change what is
    looked for; standing alone or in "for the first time" it only orders, and goes."""
    q = parse_time(question)
    assert (q.order, q.text) == (order, text)
