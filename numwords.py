"""Number words and the answer key: how two short answers are compared.

At the bottom of the house beside ``timefmt.py``: it imports nothing of vdisc, so the reader (which
matches options against evidence) and the evaluation (which matches answers against references) fold
text the same way: case, accents, punctuation and articles dropped, numbers as digits whether written
"two" or "2".
"""

from __future__ import annotations

import re
import unicodedata

# English grammar, not a data set: the words that are numbers.
UNITS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
         "seventeen eighteen nineteen").split()
TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
SCALES = {"hundred": 100, "thousand": 1000, "million": 10**6, "billion": 10**9}

_TENS = {w: 10 * (i + 2) for i, w in enumerate(TENS)}  # the number words, valued
ARTICLES = frozenset({"a", "an", "the"})


def _is_number_word(w: str) -> bool:
    return w in UNITS or w in _TENS or w in SCALES


def _words_to_number(words: list[str]) -> int:
    """English number words as an integer: ["forty", "two"] -> 42, ["two", "hundred", "five"] -> 205."""
    total = current = 0
    for w in words:
        if w in UNITS:
            current += UNITS.index(w)
        elif w in _TENS:
            current += _TENS[w]
        elif w == "hundred":
            current = max(current, 1) * 100
        else:
            total += max(current, 1) * SCALES[w]
            current = 0
    return total + current


def _run_number(run: list[str]) -> str:
    """Number words as digits; a run of single digits is read digit by digit ("seven three nine" -> 739),
    the way codes and phone numbers are said."""
    if len(run) > 1 and all(w in UNITS[:10] for w in run):
        return "".join(str(UNITS.index(w)) for w in run)
    return str(_words_to_number(run))


def answer_key(text: str) -> str:
    """A short answer reduced to what matters when comparing it: lower case ASCII words, no punctuation,
    no articles, numbers as digits ("Two" and "2" alike, "forty-two" as 42, "1,000" as 1000), and a percent
    sign glued to its number ("14 %", "14 percent" and "14%" alike)."""
    t = re.sub(r"[\u2010-\u2015\u2212]", " ", text)  # dashes (a span "0:00:43–0:00:46") separate words
    t = unicodedata.normalize("NFKD", t).encode("ascii", "ignore").decode().lower()
    t = re.sub(r"\bper\s?cent\b", "%", t)
    t = re.sub(r"(?<=\d),(?=\d{3}\b)", "", t)
    t = re.sub(r"\s+%", "%", t)
    tokens = re.findall(r"\d+(?:\.\d+)?%?|[a-z0-9]+%?|%", t.replace("-", " "))
    out: list[str] = []
    run: list[str] = []
    for i, tok in enumerate([*tokens, ""]):
        bare = tok.rstrip("%")
        following = tokens[i + 1].rstrip("%") if i + 1 < len(tokens) else ""
        if tok == "and" and run and run[-1] in SCALES and _is_number_word(following):
            continue  # "two hundred and five"
        if tok and _is_number_word(bare) and not (bare in SCALES and not run and out and not out[-1].isdigit()):
            run.append(bare)
            if tok.endswith("%"):
                out.append(f"{_words_to_number(run)}%")
                run = []
            continue
        if run:
            out.append(_run_number(run))
            run = []
        if tok and tok not in ARTICLES:
            out.append(tok)
    return " ".join(out)


__all__ = ["SCALES", "TENS", "UNITS", "answer_key"]
