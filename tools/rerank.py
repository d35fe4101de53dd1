"""The second ranking stage: read each of the first stage's best hits together
with the question, so that meaning and polarity decide (an alarm *starting*
is not the same alarm *stopping*), not only which words or topics they share.

Reader: the ``rerank`` role (a cross-encoder, ``vdisc.index.models.rerank``)
when it loads; otherwise ``fallback_scores``, which needs no extra model (it
uses the text role's bi-encoder when that is on, and plain words when not).
Either way each candidate gets a reading score in [0, 1] that means the same
for every question.

Combination: ``score = READ_WEIGHT * read + (1 - READ_WEIGHT) * first / max(first)``.
The first-stage (fused) scores are relative, so they are divided by the best
one of the list; the reading score decides, the first stage breaks near-ties
and keeps a hit that several channels agree on from falling far. A candidate
without text (a purely visual hit) cannot be read: it gets the median reading
score of the others, so the second stage neither lifts nor buries it.

``modality_evidence`` gives, per channel (speech, ocr, caption, ...), the best
reading score among its candidates: which channel answers the question comes
from that evidence rather than from a list of keywords.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from typing import Any, Sequence, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from vdisc.index.store import STOPWORDS

from .context import ToolContext

READ_WEIGHT = 0.7  # share of the final score decided by reading the text against the question
DEPTH = 30  # how many first-stage hits callers are expected to re-read (the cost is linear in it)

# Fallback reader.
WORD_FLOOR = 0.5  # word-embedding cosine at or below which two words are unrelated (MiniLM: "start"/"stopped" ~0.49)
DENSE_SHARE = 0.5  # fallback = DENSE_SHARE * sentence cosine + (1 - DENSE_SHARE) * word alignment
RECALL_BETA = 2.0  # word alignment is an F-beta of recall (question words found) and precision (text words asked)
_WORD_CACHE_SIZE = 20000
_TOKEN = re.compile(r"[^\W_]+(?:'[^\W_]+)?")


class Candidate(BaseModel):
    """A first-stage hit to re-read. Extra fields (a hit's id, say) are carried through unchanged."""

    model_config = ConfigDict(extra="allow")

    text: str
    start: float
    end: float
    video: str = ""
    level: str = ""
    modality: str = ""
    score: float  # the first stage's score in, the combined score out
    first_score: float | None = None  # set on output: the score that came in
    read_score: float | None = None  # set on output: the reading score in [0, 1] (None: nothing to read)


C = TypeVar("C", Candidate, tuple)


def rerank(ctx: ToolContext, query: str, candidates: Sequence[C]) -> list[C]:
    """Re-read ``candidates`` against ``query``; the same items with the combined score, best first.

    Items are ``Candidate`` or tuples ``(text, start, end, video, level, modality, score, ...)``; tuples
    come back as tuples with the score replaced. The order of equal scores is kept.
    """
    if not candidates:
        return []
    cands = [c if isinstance(c, Candidate) else _from_tuple(c) for c in candidates]
    texts = [c.text.strip() for c in cands]
    readable = [i for i, t in enumerate(texts) if t]
    read = np.full(len(cands), np.nan)
    if readable:
        read[readable] = read_scores(ctx, query, [texts[i] for i in readable])
    neutral = float(np.median(read[readable])) if readable else 0.0
    first = np.array([float(c.score) for c in cands])
    top = float(first.max())
    rel = first / top if top > 0 else np.ones_like(first)
    out: list[tuple[float, int, Any]] = []
    for i, (orig, c) in enumerate(zip(candidates, cands)):
        r = float(read[i]) if not math.isnan(read[i]) else None
        combined = READ_WEIGHT * (neutral if r is None else r) + (1 - READ_WEIGHT) * float(rel[i])
        if isinstance(orig, Candidate):
            item: Any = orig.model_copy(update={"score": combined, "first_score": float(orig.score), "read_score": r})
        else:
            item = (*orig[:6], combined, *orig[7:])
        out.append((combined, i, item))
    out.sort(key=lambda x: (-x[0], x[1]))
    return [item for _, _, item in out]


def read_scores(ctx: ToolContext, query: str, texts: list[str]) -> np.ndarray:
    """Reading scores in [0, 1]: the rerank model's, or ``fallback_scores`` when the role is off."""
    reader = ctx.registry.get("rerank")  # says once why it is off
    if reader is not None:
        return np.asarray(reader.score(query, texts), dtype=np.float64)
    return fallback_scores(query, texts, ctx.registry.get("text"))


def modality_evidence(reranked: Sequence[Candidate]) -> dict[str, float]:
    """Per modality, the best reading score among ``reranked`` (read ones only), best channel first."""
    best: dict[str, float] = {}
    for c in reranked:
        if c.read_score is not None and c.modality:
            best[c.modality] = max(best.get(c.modality, 0.0), c.read_score)
    return dict(sorted(best.items(), key=lambda kv: -kv[1]))


# ---- the model-free reader ------------------------------------------------------------------------------------


def fallback_scores(query: str, texts: list[str], text_model: Any | None = None) -> np.ndarray:
    """Read each text against ``query`` without a cross-encoder; scores in [0, 1], higher = more relevant.

    Two parts, averaged (``DENSE_SHARE``):

    - sentence cosine between question and text from the text role's bi-encoder (clipped at 0): topic;
    - word alignment, BERTScore-like: every content word of the question (``index.store.STOPWORDS`` aside)
      is matched to its closest word of the text, and every text word to its closest word of the whole
      question, by the cosine of the bi-encoder's embeddings of the single words (an inflection of the
      same word counts as the same word), counted above ``WORD_FLOOR`` only: ``start``/``started`` align,
      ``start``/``stopped`` do not. No list of antonyms, verbs or negations: the embedding decides. Words
      are weighted by an IDF computed over the candidates themselves, so what all candidates share
      (``the alarm ... ringing at noon``) weighs little and what tells them apart (``started`` vs
      ``stopped``, or an added ``did not``) weighs most: of two lines about the same thing, the one with
      the question's verb wins, and a line that adds a word the question does not ask for (a negation)
      loses to the plain one. Recall (question words found) counts ``RECALL_BETA``² times as much as
      precision (text words the question asks about), since a transcript line says more than a question.

    Without a text model both parts fall back to exact words (lower-cased, common suffixes stripped).
    """
    if not texts:
        return np.zeros(0)
    q_words = _words(query)
    t_words = [_words(t) for t in texts]
    if text_model is not None:
        vecs = text_model.encode([query, *texts])
        dense = np.clip(vecs[1:] @ vecs[0], 0.0, 1.0)
        sim = _word_similarity(text_model)
    else:
        qs = {_stem(w) for w in q_words}
        dense = np.array([len(qs & {_stem(x) for x in w}) / max(1, len(qs)) for w in t_words])
        sim = _exact_similarity
    align = _alignment(q_words, t_words, sim)
    return np.clip(DENSE_SHARE * dense + (1 - DENSE_SHARE) * align, 0.0, 1.0)


def _alignment(q_words: list[str], t_words: list[list[str]], sim: Any) -> np.ndarray:
    n = len(t_words)
    if not q_words or not any(t_words):
        return np.zeros(n)
    vocab = sorted(set(q_words).union(*t_words))
    at = {w: i for i, w in enumerate(vocab)}
    stems = np.array([_stem(w) for w in vocab])
    s = np.maximum(sim(vocab), stems[:, None] == stems[None, :])  # the same word inflected is the same word
    s = np.clip((s - WORD_FLOOR) / (1 - WORD_FLOOR), 0.0, 1.0)  # (V, V) graded word matches
    # recall asks for the question's content words; precision checks every text word against the whole question
    content = [w for w in q_words if w not in STOPWORDS] or q_words
    qi = np.array([at[w] for w in dict.fromkeys(content)])
    qa = np.array([at[w] for w in dict.fromkeys(q_words)])
    recall_m = np.zeros((n, len(qi)))  # how well text c holds question word w
    precision_m: list[np.ndarray] = []  # how well the question holds each word of text c
    tis = []
    for c, words in enumerate(t_words):
        ti = np.array([at[w] for w in dict.fromkeys(words)], dtype=int)
        tis.append(ti)
        if len(ti):
            recall_m[c] = s[np.ix_(qi, ti)].max(axis=1)
            precision_m.append(s[np.ix_(ti, qa)].max(axis=1))
        else:
            precision_m.append(np.zeros(0))
    # question words: IDF over the candidates (soft document frequency), times how well any candidate holds
    # them, so a word that no candidate contains does not dilute the others
    soft_df = recall_m.sum(axis=0)
    q_weight = np.log((n + 1) / (soft_df + 0.5)) * recall_m.max(axis=0)
    df: dict[int, int] = {}
    for ti in tis:
        for i in ti.tolist():
            df[i] = df.get(i, 0) + 1
    out = np.zeros(n)
    b2 = RECALL_BETA ** 2
    for c, ti in enumerate(tis):
        if not len(ti) or q_weight.sum() <= 0:
            continue
        recall = float(recall_m[c] @ q_weight / q_weight.sum())
        t_weight = np.log((n + 1) / (np.array([df[i] for i in ti.tolist()]) + 0.5))
        precision = float(precision_m[c] @ t_weight / t_weight.sum()) if t_weight.sum() > 0 else 0.0
        if recall + precision > 0:
            out[c] = (1 + b2) * precision * recall / (b2 * precision + recall)
    return out


def _words(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def _stem(word: str) -> str:
    """A crude, language-general enough stem: inflection off, final e and doubled consonant folded."""
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            word = word[: -len(suffix)]
            break
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiouls":
        word = word[:-1]
    return word


def _exact_similarity(vocab: list[str]) -> np.ndarray:
    stems = [_stem(w) for w in vocab]
    return np.array([[1.0 if a == b else 0.0 for b in stems] for a in stems])


_word_vectors: "OrderedDict[tuple[str, str], np.ndarray]" = OrderedDict()


def _word_similarity(text_model: Any):
    """vocab -> (V, V) cosine of the text model's embeddings of the single words (cached per model)."""
    key = getattr(getattr(text_model, "spec", None), "key", str(id(text_model)))

    def sim(vocab: list[str]) -> np.ndarray:
        missing = [w for w in vocab if (key, w) not in _word_vectors]
        if missing:
            for w, v in zip(missing, text_model.encode(missing)):
                _word_vectors[(key, w)] = np.asarray(v, dtype=np.float32)
            while len(_word_vectors) > _WORD_CACHE_SIZE:
                _word_vectors.popitem(last=False)
        m = np.stack([_word_vectors[(key, w)] for w in vocab])
        for w in vocab:
            _word_vectors.move_to_end((key, w))
        return m @ m.T

    return sim


def _from_tuple(t: tuple) -> Candidate:
    if len(t) < 7:
        raise ValueError("a candidate tuple is (text, start, end, video, level, modality, score, ...)")
    text, start, end, video, level, modality, score = t[:7]
    return Candidate(text=text, start=start, end=end, video=video, level=level, modality=modality, score=score)
