"""Turn an LLM's answer into keywords, and merge the answers of several attributes.

Pure functions. Small models answer in every format: "1. a; 2. b", one per line, "a, b, c", bullets,
quoted words, the prompt's own example words echoed back, or the item names themselves.
"""

from __future__ import annotations

import re
from collections import defaultdict

__all__ = ["parse_answer", "trim_keyword", "frequent_words", "parse_keywords", "normalize_keyword", "rank_keywords", "attribute_keywords"]

_STOP_LINE = re.compile(r"^\s*(###|human:|assistant:|user:|note:|explanation:|these keywords)", re.I)
_ECHO = re.compile(r"^(the\s+)?(\d+\s+)?keywords?\s+(are|is)\s*:?", re.I)
_PLACEHOLDER = re.compile(r"^(keyword|item|example)\s*\d*$", re.I)
# single words that are never a preference on their own (small models emit them as list items)
STOPWORDS = {
    "a", "an", "the", "and", "or", "not", "no", "yes", "none", "n/a", "etc", "other", "others", "more", "some",
    "style", "styles", "color", "colour", "theme", "keyword", "keywords", "item", "items", "thing", "things",
    "user", "users", "he", "she", "they", "it", "his", "her", "their", "with", "of", "in", "on", "for", "to",
}
_SPLIT = re.compile(r"\s*(?:;|,|\n|\|)\s*|\s+(?=\d{1,2}[.)]\s)")
_NUMBER = re.compile(r"^\s*(?:\d{1,2}[.)]|[-*\u2022#])\s*")


def _clean(piece: str) -> str:
    p = _NUMBER.sub("", piece.strip())
    p = _ECHO.sub("", p).strip()
    p = _NUMBER.sub("", p)
    p = p.strip(" \t\"'`“”‘’*_.:!?()[]{}")
    p = p.replace("-", " ").replace("_", " ")
    return re.sub(r"\s+", " ", p).strip()


def parse_keywords(answer: str, *, max_words: int = 4, max_chars: int = 40) -> list[str]:
    """Keywords in the order given, cleaned; junk and over-long phrases dropped.

    >>> parse_keywords('cute; 2. "Cartoon"; 3. cat-face; 4. keyword 4; 5.')
    ['cute', 'Cartoon', 'cat face']
    """
    lines = []
    for line in answer.splitlines():
        if _STOP_LINE.match(line) and lines:
            break
        lines.append(line)
    out = []
    for piece in _SPLIT.split("\n".join(lines)):
        k = _clean(piece)
        if (
            not k
            or len(k) > max_chars
            or len(k.split()) > max_words
            or _PLACEHOLDER.match(k)
            or k.isdigit()
            or ":" in k
            or not re.search(r"[a-zA-Z]", k)
            or k.lower() in STOPWORDS
            or any(c in k for c in "()[]{}\"")  # half a title or a quotation, not a keyword
        ):
            continue
        out.append(k)
    return out


def parse_answer(answer: str) -> list[str]:
    """A JSON list of phrases (a constrained answer) or free text, as keywords."""
    import json

    text = answer.strip()
    if text.startswith("["):
        try:
            items = json.loads(text)
        except ValueError:
            items = None
        if isinstance(items, list):
            out = [k for it in items if isinstance(it, str) for k in parse_keywords(it)]
            return [t for k in out if (t := trim_keyword(k))]
    return [t for k in parse_keywords(answer) if (t := trim_keyword(k))]


def singular(word: str) -> str:
    if len(word) <= 3 or word.endswith(("ss", "us", "is", "ous")):
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "xes", "sses", "zes")):
        return word[:-2]
    if word.endswith("s"):
        return word[:-1]
    return word


def normalize_keyword(k: str) -> str:
    """Case-, plural- and possessive-insensitive key: 'Black Cats', 'black cat' and "black cat's" are one keyword."""
    return " ".join(singular(re.sub(r"'s?$", "", w)) for w in re.findall(r"[a-z0-9']+", k.lower()))


def attribute_keywords(attributes: list[dict[str, str]], min_share: float = 0.3) -> dict[str, float]:
    """Structured item attributes that recur across the history, as keywords (most frequent first)
    with the share of items that carry them.

    ``{"style": "twemoji"}`` in most items -> "twemoji style". Small LLMs often miss such explicit
    signals, so they join the LLM's answers as one more vote (``rank_keywords``).
    """
    counts: dict[str, int] = defaultdict(int)
    for attrs in attributes:
        seen = {}  # one vote per item (a value repeated inside one item is still one item's word), in order
        for k, v in attrs.items():
            for value in re.split(r"[|,;/]", v):
                value = value.strip()
                if not value or len(value) > 40:
                    continue
                kw = f"{value} style" if "style" in k.lower() and "style" not in value.lower() else value
                seen.setdefault(kw.lower())
        for kw in seen:
            counts[kw] += 1
    need = max(2, min_share * len(attributes)) if len(attributes) > 1 else 1
    return {k: n / len(attributes) for k, n in sorted(counts.items(), key=lambda kv: -kv[1]) if n >= need}


_PRONOUNS = {"i", "me", "my", "mine", "you", "your", "we", "our", "he", "him", "his", "she", "her", "they", "them",
             "their", "it", "its", "this", "that", "these", "those"}
_EDGE = (STOPWORDS - {"style", "styles", "color", "colour", "theme"}) | _PRONOUNS | {
    "with", "very", "so", "some", "any", "all", "like", "likes", "liked", "is", "are", "was", "were", "be", "has",
    "have", "had", "does", "did"}


def trim_keyword(k: str) -> str:
    """Function words off both ends ("the dogs" -> "dogs", "black tshirt with" -> "black tshirt");
    empty when a pronoun is left inside ("took my dog" is a sentence, not a keyword)."""
    words = k.split()
    while words and words[0].lower() in _EDGE:
        words.pop(0)
    while words and words[-1].lower() in _EDGE:
        words.pop()
    if any(w.lower() in _PRONOUNS for w in words):
        return ""
    return " ".join(words)


def frequent_phrases(captions: list[str], min_share: float = 0.5) -> dict[str, float]:
    """Comma-separated phrases that most item captions share ("noto style" in 4 of 4 tagger captions),
    with that share: like ``frequent_words``, a vote grounded in the images by construction."""
    if len(captions) < 2:
        return {}
    counts: dict[str, int] = defaultdict(int)
    surface: dict[str, str] = {}
    for c in captions:
        phrases: dict[str, str] = {}  # one vote per caption: "cat, cats" is one phrase, counted once
        for phrase in (p.strip().lower() for p in c.split(",")):
            key = normalize_keyword(phrase)
            if key and key not in _EDGE:
                phrases.setdefault(key, phrase)
        for key, phrase in phrases.items():
            counts[key] += 1
            surface.setdefault(key, phrase)
    return {surface[k]: n / len(captions) for k, n in sorted(counts.items(), key=lambda kv: -kv[1])
            if n / len(captions) >= min_share and n >= 2}


def drop_field_labels(keywords: list[str], attributes: list[dict[str, str]]) -> list[str]:
    """Keywords that are not just the items' field names: the behaviours read "genres: Drama|Romance",
    and a small LLM answers "genres" (grounded by words, about nothing). A keyword whose every word is a
    field name ("genres", "director", "movie genres" when "movie" is a field too) is dropped, unless a
    field's value also says it."""
    labels = {w for attrs in attributes for k in attrs for w in normalize_keyword(k).split()}
    values = {w for attrs in attributes for v in attrs.values() for w in normalize_keyword(v).split()}
    labels -= values
    if not labels:
        return list(keywords)
    return [k for k in keywords if not (set(normalize_keyword(k).split()) <= labels)]


def frequent_words(texts: list[str], min_share: float = 0.5, exclude: set[str] = frozenset()) -> dict[str, float]:
    """Content words that most of the behaviours share ("cat" in 7 of 7 cat emoji), with that share:
    a vote for the keyword ranking, grounded by construction."""
    if len(texts) < 2:
        return {}
    counts: dict[str, int] = defaultdict(int)
    for t in texts:
        for w in dict.fromkeys(normalize_keyword(t).split()):
            if len(w) > 2 and w not in _EDGE and w not in exclude and not w.isdigit():
                counts[w] += 1
    return {w: n / len(texts) for w, n in sorted(counts.items(), key=lambda kv: -kv[1]) if n / len(texts) >= min_share}


def _grounded(key: str, texts: list[str]) -> int:
    """How many of ``texts`` mention ``key`` (compared word by word, plural-insensitively)."""
    n = 0
    for t in texts:
        if f" {key} " in f" {normalize_keyword(t)} ":
            n += 1
    return n


def rank_keywords(
    answers: list[list[str]],
    *,
    evidence: list[str] = (),
    examples: tuple[str, ...] = (),
    banned: list[str] = (),
    support: dict[str, float] | None = None,
    top_k: int | None = 10,
) -> list[str]:
    """Merge per-attribute keyword lists, de-duplicate, rank, keep ``top_k``.

    Score = number of attribute answers naming the keyword + 2 x the share of ``evidence`` texts
    (the behaviours) that mention it: a keyword the behaviours support beats one the LLM invented.
    "cat face" and "catface" are one keyword. ``support`` gives keywords a share of evidence of
    their own (structured attributes: the share of items carrying them). Ties keep first-seen order. Example words copied from the
    prompt are dropped unless the behaviours mention them; ``banned`` (e.g. item titles) are dropped.
    """
    first: dict[str, tuple[int, int]] = {}
    surface: dict[str, str] = {}
    votes: dict[str, int] = defaultdict(int)
    variants: dict[str, set[str]] = {}
    ex = {normalize_keyword(e) for e in examples}
    sup = {normalize_keyword(k): v for k, v in (support or {}).items()}
    ban = {normalize_keyword(b) for b in banned}
    ban |= {normalize_keyword(re.sub(r"\(\d{4}\)", "", b)) for b in banned}  # "Toy Story (1995)" bans "toy story"
    evidence = list(evidence)
    for a, kws in enumerate(answers):
        seen = set()
        for pos, k in enumerate(kws):
            spaced = normalize_keyword(k)
            key = spaced.replace(" ", "")
            if not key or key in seen or spaced in ban:
                continue
            seen.add(key)
            votes[key] += 1
            variants.setdefault(key, set()).add(spaced)
            if key not in first:
                first[key], surface[key] = (a, pos), k.lower()
    scores = {}
    for key in votes:
        g = max(_grounded(v, evidence) for v in variants[key]) / max(1, len(evidence))
        g = max([g] + [sup[v] for v in variants[key] if v in sup])
        if variants[key] & ex and g == 0:
            continue
        scores[key] = votes[key] + 2 * g
    order = sorted(scores, key=lambda k: (-scores[k], first[k]))
    return [surface[k] for k in (order if top_k is None else order[:top_k])]
