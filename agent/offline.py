"""The offline planner: a fixed, deterministic policy that needs no LLM.

1. search several phrasings of the question (its content words as a phrase,
   its keywords, each quoted string), in one step;
2. fuse the hits by moment and inspect the best few candidate windows;
3. ground the most convincing one;
4. answer with the grounded span and the evidence it rests on, or say that
   nothing convincing was found (with the nearest evidence), never a guess.
"""

from __future__ import annotations

import re
from typing import Any

from langchain_core.messages import AnyMessage

from .answer import Observation, hms
from .toolbox import Toolbox

N_INSPECT = 2  # candidate windows zoomed into
MIN_CONFIDENCE = 0.15  # below this the best moment is reported as "not found"
EXTRA_SPAN_CONFIDENCE = 0.5  # other inspected windows this sure are listed as further spans

# Words that frame a question about a video rather than describe the moment.
FRAMING = re.compile(
    r"\b(when|where|what time|at what (point|time|moment)|which (part|moment|scene|point)|how long|"
    r"in (the|this) (video|clip|film|movie)|does|do|did|is|are|was|were|can you|could you|please|"
    r"tell me|show me|find|the moment|the part|the scene|someone|somebody|they|he|she|"
    r"talk(s|ed|ing)? about|mention(s|ed)?|say(s)?|said|spoken|speak(s)?|discuss(es|ed)?|come(s)? up|"
    r"(is |are )?(shown|displayed|written|visible)( on (the )?screen)?|on (the )?screen|appear(s|ed)?)\b",
    re.IGNORECASE,
)
# Words that say which channel the moment lives in.
SPEECH_HINT = re.compile(r"\b(talk\w*|mention\w*|say|says|said|spoken|speak\w*|discuss\w*|hear\w*|voice|"
                         r"narrat\w*)\b", re.IGNORECASE)
TEXT_HINT = re.compile(r"\b(shown|written|on (the )?screen|sign|text|read|title|displayed|label|caption)\b",
                       re.IGNORECASE)
HINT_BONUS = 0.3  # for an inspected window whose evidence is in the channel the question names
STOP = frozenset(
    "a an and are as at be been but by for from has have he her his i if in into is it its me my of on or our she "
    "so than that the their them then there these they this those to was we were what which who why will with you "
    "your get gets got say says said mention mentions mentioned talk talks about appear appears appeared shown "
    "show shows screen video".split()
)


class OfflinePlanner:
    name = "offline"

    def start(self, question: str, video: str | None, toolbox: Toolbox, max_steps: int) -> list[AnyMessage]:
        return []  # no conversation: the policy reads the observations

    def plan(self, state: dict[str, Any], must_answer: str | None) -> dict[str, Any]:
        obs: list[Observation] = state.get("observations", [])
        done = {o.tool for o in obs}
        question = state["question"]
        if must_answer:
            return {"final": self._final(question, obs)}
        if "search" not in done:
            calls = [_call("search", {"query": q, "top_k": 10}) for q in phrasings(question)]
            hint = channel_hint(question)
            if hint:
                calls.append(_call("search", {"query": content(question), "top_k": 10, "modality": hint}))
            return {"calls": calls}
        if "inspect" not in done:
            windows = candidates(obs)[:N_INSPECT]
            if not windows:
                return {"final": self._final(question, obs)}
            return {"calls": [_call("inspect", {"video": v, "start": a, "end": b, "question": content(question)})
                              for v, a, b in windows]}
        if "ground" not in done:
            best = _best_inspect(obs, candidates(obs), channel_hint(question))
            if best is None:
                return {"final": self._final(question, obs)}
            r = best.result
            return {"calls": [_call("ground", {"video": r["video"], "start": r["best_start"], "end": r["best_end"],
                                               "query": content(question)})]}
        return {"final": self._final(question, obs)}

    def _final(self, question: str, obs: list[Observation]) -> dict[str, Any]:
        grounded = [o for o in obs if o.tool == "ground" and o.result]
        inspected = [o for o in obs if o.tool == "inspect" and o.result]
        if grounded and grounded[-1].result["confidence"] >= MIN_CONFIDENCE:
            g = grounded[-1].result
            spans = [{"video": g["video"], "start": g["start"], "end": g["end"], "confidence": g["confidence"]}]
            for o in sorted(inspected, key=lambda o: -o.result["confidence"]):
                r = o.result
                far = all(r["video"] != s["video"] or r["best_end"] <= s["start"] or r["best_start"] >= s["end"]
                          for s in spans)
                if far and r["confidence"] >= EXTRA_SPAN_CONFIDENCE:
                    spans.append({"video": r["video"], "start": r["best_start"], "end": r["best_end"],
                                  "confidence": round(r["confidence"] * 0.8, 3)})
            what = {"speech": "said", "ocr": "shown on screen", "visual": "seen"}.get(g["source"], "found")
            quote = f': "{g["evidence"]}"' if g["evidence"] else ""
            text = f"At {hms(g['start'])}–{hms(g['end'])} in {g['video']} ({what}){quote}."
            steps = [grounded[-1].step] + [o.step for o in inspected]
            return {"answer": text, "spans": spans, "evidence": steps}
        nearest = [m for o in obs if o.tool in ("ground", "inspect", "search") for m in o.moments[:1]]
        if nearest:
            m = max(nearest, key=lambda m: m.score)
            hint = f" The closest candidate was {hms(m.start)}–{hms(m.end)} in {m.video}"
            hint += f' ("{m.text}")' if m.text and not m.text.startswith(("best", "inspected")) else ""
            return {"answer": "Not found: nothing in the library clearly matches the question." + hint + ", "
                    "but it does not fit well enough to report.", "spans": [],
                    "evidence": sorted({o.step for o in obs})}
        return {"answer": "Not found: the search returned nothing for this question.", "spans": [], "evidence": []}


def content(question: str) -> str:
    """The question without its framing words: the description of the moment."""
    text = FRAMING.sub(" ", question.replace("?", " "))
    text = " ".join(text.split()).strip(" ,.;:!")
    return text or question.strip()


def keywords(question: str) -> str:
    words = [w for w in re.findall(r"[\w'-]+", content(question).lower()) if w not in STOP]
    return " ".join(dict.fromkeys(words))


def quoted(question: str) -> list[str]:
    return [q.strip() for pair in re.findall(r'"([^"]+)"|“([^”]+)”|\'([^\']{3,})\'', question)
            for q in pair if q.strip()]


def phrasings(question: str) -> list[str]:
    """Distinct search queries for a question: quoted strings, its content, its keywords."""
    out = [*quoted(question), content(question), keywords(question)]
    return [q for q in dict.fromkeys(x for x in out if x)]


def candidates(obs: list[Observation]) -> list[tuple[str, float, float]]:
    """Candidate windows from all searches, fused by moment (summed scores), best first.

    Frame hits widen to a few seconds around the frame; scene and video hits
    are too coarse to inspect and only count when nothing finer was found.
    """
    scores: dict[tuple[str, float, float], float] = {}
    coarse: dict[tuple[str, float, float], float] = {}
    for o in obs:
        if o.tool != "search" or not o.result:
            continue
        for h in o.result["hits"]:
            if h["level"] == "frame":
                key = (h["video"], max(0.0, h["start"] - 3.0), h["end"] + 3.0)
            else:
                key = (h["video"], h["start"], h["end"])
            bucket = scores if h["level"] in ("clip", "frame") else coarse
            bucket[key] = bucket.get(key, 0.0) + h["score"]
    ranked = sorted(scores.items(), key=lambda kv: -kv[1]) or sorted(coarse.items(), key=lambda kv: -kv[1])
    picked: list[tuple[str, float, float]] = []
    for (v, a, b), _ in ranked:
        if all(v != pv or b <= pa or a >= pb for pv, pa, pb in picked):  # distinct windows only
            picked.append((v, a, b))
    return picked


def channel_hint(question: str) -> str | None:
    """"speech" or "ocr" when the question says where the moment is (said / shown), else None."""
    speech, text = bool(SPEECH_HINT.search(question)), bool(TEXT_HINT.search(question))
    return "speech" if speech and not text else "ocr" if text and not speech else None


def _best_inspect(obs: list[Observation], ranked: list[tuple[str, float, float]],
                  hint: str | None = None) -> Observation | None:
    """The inspected window to ground: its own confidence, plus a prior from its search rank (so a
    window the searches agreed on is not beaten by a vaguely similar picture), plus a bonus when its
    evidence is in the channel the question names."""
    inspected = [o for o in obs if o.tool == "inspect" and o.result]

    def prior(o: Observation) -> float:
        key = (o.args.get("video"), o.args.get("start"), o.args.get("end"))
        rank = next((i for i, c in enumerate(ranked) if c == key), len(ranked))
        return 0.5 / (1 + rank) + (HINT_BONUS if hint and o.result["source"] == hint else 0.0)

    return max(inspected, key=lambda o: o.result["confidence"] + prior(o)) if inspected else None


def _call(name: str, args: dict[str, Any]) -> dict[str, Any]:
    return {"id": None, "name": name, "args": args}


__all__ = ["OfflinePlanner", "channel_hint", "content", "keywords", "phrasings", "quoted"]
