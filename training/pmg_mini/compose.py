"""pmg-mini v2 training examples in the format PMG conditions with (pure functions, no torch).

At inference the generator sees a *target* window (five keywords the LLM gave for the message or the
target item: "happy, smile, joy") and a *preference* window (up to ten keywords from the user's
history: theme words, an art-style phrase, a few off-topic words), weighted (w_p, w_t). v1 was
trained on short captions and did not compose them. Here every training example is built like that:

1. a target concept X (a yellow face with a mood half of the time, any emoji otherwise) and its
   target words (label without "face", tags, mood synonyms);
2. a simulated user: an art style S and a theme family G (an emoji subgroup or group), a history of
   3-8 emoji of G drawn by real usage frequency, and preference words built from that history the
   way the keyword stage builds them (labels, frequent tags, the family name, "S style", 0-2
   off-topic words);
3. a weight ratio r = w_p / (w_p + w_t), and the image the grid should show at that ratio:

   ====================  =========================================================
   r = 0 (0:4)           X in a random style (the preference window is masked out)
   0 < r < 0.35 (1:3)    X in the user's style S
   0.35 <= r <= 0.65     the composition: G's member for X's mood in style S where
   (2:2)                 G has one (X = grinning face, G = cat faces -> grinning cat), else X in S
   0.65 < r < 1 (3:1)    a member of G in style S: the user's favourite (most used) one
   r = 1 (4:0)           any member of the user's history in style S (target masked out)
   ====================  =========================================================

Compositions are mined from the emoji names and tags (``composition``): a family member whose label
is X's with "face" replaced by the family's subject and which shares a tag with X, or else the most
used member that shares one of X's mood words. Nothing here names the benchmark's themes or targets.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from pmg.keywords.moods import MOOD_WORDS
from pmg.keywords.moods import WORD_TO_MOOD as _WORD_TO_MOOD

__all__ = ["Example", "EmojiIndex", "parse_band_probs", "ratio_band", "sample_example", "GRID_BANDS"]


# (low, high) bounds of r = w_p / (w_p + w_t) per band; 0 and 1 are the masked ends.
GRID_BANDS = {"target": (0.0, 0.0), "style": (0.1, 0.35), "compose": (0.35, 0.65), "favourite": (0.65, 0.9), "history": (1.0, 1.0)}
BAND_PROBS = {"target": 0.12, "style": 0.2, "compose": 0.38, "favourite": 0.15, "history": 0.15}


def parse_band_probs(text: str) -> dict[str, float]:
    """'favourite=0.3,compose=0.3' -> ``BAND_PROBS`` with those bands' shares replaced (relative weights)."""
    probs = dict(BAND_PROBS)
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        if name not in GRID_BANDS:
            raise ValueError(f"band {name!r} is not one of {', '.join(GRID_BANDS)}")
        try:
            probs[name] = float(value)
        except ValueError:
            raise ValueError(f"band share {part!r} is not NAME=NUMBER") from None
        if not probs[name] >= 0:
            raise ValueError(f"band share {part!r} must be >= 0")
    if sum(probs.values()) <= 0:
        raise ValueError(f"band shares {text!r} sum to 0")
    return probs


def ratio_band(r: float) -> str:
    """Which image the grid shows at r = w_p / (w_p + w_t)."""
    if r <= 0:
        return "target"
    if r >= 1:
        return "history"
    if r < 0.35:
        return "style"
    if r <= 0.65:
        return "compose"
    return "favourite"


def words_of(m: dict) -> set[str]:
    return set(m["label"].lower().replace("-", " ").split()) | {t.lower() for t in m["tags"]}


def moods_of(m: dict) -> set[str]:
    ws = words_of(m) | {m["label"].lower()}
    return {_WORD_TO_MOOD[w] for w in ws if w in _WORD_TO_MOOD}


def is_face(m: dict) -> bool:
    return m["group"] == "smileys-emotion" and m["subgroup"].startswith("face-")


@dataclass
class Example:
    target: list[str]  # target keywords
    preference: list[str]  # preference keywords (may be empty only when r == 0)
    r: float  # w_p / (w_p + w_t)
    hexcode: str  # the image to learn
    style: str
    band: str
    concept: str = ""  # the target concept X (its image prompt is an exemplar of X from another art set)
    history: tuple[str, ...] = ()  # the simulated user's history (their pictures: the preference image prompt)
    user_style: str = ""  # the simulated user's art style (their history's pictures are drawn in it)


class EmojiIndex:
    """The training concepts per style, families, usage weights and mined compositions."""

    def __init__(self, metas: list[dict], usage: dict[str, float] | None = None, styles: tuple[str, ...] | None = None,
                 exclude_subgroups: frozenset[str] = frozenset(), p_named: float = 0.0):
        """``exclude_subgroups``: themes no simulated user has (an evaluation's held-out themes): their emoji
        join no family, so they are never a user's favourites; they stay targets and plain captions.
        ``p_named``: the share of preference windows named the way the keyword stage names a theme
        (``named_preference_words``) rather than from the items' labels and tags."""
        self.p_named = p_named
        self._shared: dict[tuple[str, ...], list[str]] = {}
        self.by_key = {(m["hexcode"], m["style"]): i for i, m in enumerate(metas)}
        self.concepts: dict[str, dict] = {}
        for m in metas:
            self.concepts.setdefault(m["hexcode"], m)
        self.styles = styles or tuple(sorted({m["style"] for m in metas}))
        self.usage = {h: (usage or {}).get(h, 1.0) for h in self.concepts}
        fam: dict[str, list[str]] = {}
        for h, m in self.concepts.items():
            if m["subgroup"] in exclude_subgroups:
                continue
            fam.setdefault("sub:" + m["subgroup"], []).append(h)
            fam.setdefault("group:" + m["group"], []).append(h)
        self.families = {k: sorted(v) for k, v in fam.items() if len(v) >= 3}
        self.family_keys = sorted(self.families)
        self.faces = sorted(h for h, m in self.concepts.items() if is_face(m) and moods_of(m))
        self.all = sorted(self.concepts)
        self._label_index = {m["label"].lower(): h for h, m in self.concepts.items()}

    # ------------------------------------------------------------------ compositions
    def composition(self, target: str, family: str) -> str:
        """G's member for X's mood, or X itself when G has none (or X is in G)."""
        members = self.families[family]
        if target in members:
            return target
        x = self.concepts[target]
        if not is_face(x):
            return target
        xl, xw = x["label"].lower().split(), words_of(x) - {"face"}
        for h in members:  # "grinning cat" <-> "grinning face": label with the subject swapped, a shared tag
            m = self.concepts[h]
            ml = m["label"].lower().split()
            for i, w in enumerate(ml):
                if " ".join(ml[:i] + ["face"] + ml[i + 1 :]) == " ".join(xl) and (words_of(m) - {w, "face"}) & xw:
                    return h
        # else the most used member sharing the mood that X's *name* states (tags are too loose:
        # "tired face" is tagged "sad" too)
        moods = {_WORD_TO_MOOD[w] for w in xl + [x["label"].lower()] if w in _WORD_TO_MOOD} or moods_of(x)
        best, best_key = target, None
        for h in members:
            m = self.concepts[h]
            if is_face(m) or not (moods_of(m) & moods):
                continue
            if "emotion" not in m["tags"] and not any(w in _WORD_TO_MOOD for w in m["label"].lower().split()):
                continue  # a koala tagged "sad" is not the sad one of its family
            if best_key is None or self.usage[h] > best_key:
                best, best_key = h, self.usage[h]
        return best

    # ------------------------------------------------------------------ words
    def target_words(self, h: str, rng: random.Random) -> list[str]:
        m = self.concepts[h]
        label = " ".join(w for w in m["label"].lower().split() if w != "face") or m["label"].lower()
        words = [label]
        tags = [t for t in m["tags"] if t.lower() not in ("face", "feels", "143", "cost")]
        rng.shuffle(tags)
        words += tags[: rng.randint(1, 4)]
        for mood in sorted(moods_of(m)):
            if rng.random() < 0.6:
                words += rng.sample(MOOD_WORDS[mood], k=min(2, len(MOOD_WORDS[mood])))
        words = list(dict.fromkeys(w.lower() for w in words))
        rng.shuffle(words)
        if rng.random() < 0.7 and label in words:  # the LLM usually names the concept first
            words.remove(label)
            words.insert(0, label)
        return words[: rng.randint(3, 5)]

    def shared_words(self, history: list[str]) -> list[str]:
        """What the keyword stage names from these items without the LLM (``shared_theme_words``), strongest
        first ("doctor, medicine" for pills, syringe and stethoscope). Cached per set of items."""
        key = tuple(sorted(set(history)))
        if key not in self._shared:
            from pmg.keywords.categories import shared_theme_words

            shared = shared_theme_words([self.concepts[h]["label"].lower() for h in history],
                                        [", ".join(self.concepts[h]["tags"]) for h in history])
            self._shared[key] = sorted(shared, key=lambda w: -shared[w])
        return list(self._shared[key])

    def named_preference_words(self, history: list[str], style: str, rng: random.Random) -> list[str]:
        """A preference window as the keyword stage writes it: the art style (among the first three), the theme words it
        names (``shared_words``), a few of the items' labels (the LLM repeats the most used ones), 0-2
        off-topic words."""
        words = self.shared_words(history)[: rng.randint(1, 4)]
        if rng.random() < 0.9:
            words.insert(rng.randint(0, min(2, len(words))), f"{style} style")
        by_use = sorted(dict.fromkeys(history), key=lambda h: (-history.count(h), -self.usage[h], h))
        words += [self.concepts[h]["label"].lower() for h in by_use[: rng.choice((0, 1, 1, 2, 3))]]
        for _ in range(rng.choice((0, 0, 1, 2))):
            other = self.concepts[rng.choice(self.all)]
            words.insert(rng.randint(0, len(words)), rng.choice([other["label"].lower()] + [t.lower() for t in other["tags"]]))
        return list(dict.fromkeys(words))[:10]

    def preference_words(self, family: str, history: list[str], style: str, rng: random.Random) -> list[str]:
        if rng.random() < self.p_named and self.shared_words(history):
            return self.named_preference_words(history, style, rng)
        counts: dict[str, float] = {}
        for h in history:
            m = self.concepts[h]
            counts[m["label"].lower()] = counts.get(m["label"].lower(), 0) + 1.0
            for t in m["tags"]:
                counts[t.lower()] = counts.get(t.lower(), 0) + 0.5
        ranked = sorted(counts, key=lambda w: (-counts[w], w))
        fam_name = family.split(":", 1)[1].replace("-", " ")
        words = ranked[: rng.randint(2, 7)]
        if rng.random() < 0.5:
            words.insert(rng.randint(0, len(words)), fam_name)
        if rng.random() < 0.9:
            words.insert(rng.randint(0, min(3, len(words))), f"{style} style" if rng.random() < 0.8 else style)
        for _ in range(rng.choice((0, 0, 1, 1, 2))):  # off-topic words the LLM adds
            other = self.concepts[rng.choice(self.all)]
            words.insert(rng.randint(0, len(words)), rng.choice([other["label"].lower()] + [t.lower() for t in other["tags"]]))
        return list(dict.fromkeys(words))[:10]

    # ------------------------------------------------------------------ sampling
    def _pick(self, pool: list[str], style: str, rng: random.Random) -> str | None:
        pool = [h for h in pool if (h, style) in self.by_key]
        if not pool:
            return None
        return rng.choices(pool, weights=[math.log1p(self.usage[h]) + 1 for h in pool])[0]

    def sample(self, rng: random.Random) -> Example | None:
        style = rng.choice(self.styles)
        family = rng.choice(self.family_keys)
        history = [h for _ in range(rng.randint(3, 8)) if (h := self._pick(self.families[family], style, rng))]
        if not history:
            return None
        target = rng.choice(self.faces) if rng.random() < 0.5 else rng.choice(self.all)
        band = rng.choices(list(BAND_PROBS), weights=list(BAND_PROBS.values()))[0]
        lo, hi = GRID_BANDS[band]
        r = lo if lo == hi else rng.uniform(lo, hi)
        if band == "target":
            img, img_style = target, rng.choice(self.styles)
        elif band == "style":
            img, img_style = target, style
        elif band == "compose":
            img, img_style = self.composition(target, family), style
        elif band == "favourite":
            img, img_style = max(set(history), key=lambda h: (history.count(h), self.usage[h], h)), style
        else:
            img, img_style = rng.choice(history), style
        if (img, img_style) not in self.by_key:
            return None
        return Example(self.target_words(target, rng), self.preference_words(family, history, style, rng), r, img, img_style, band,
                       target, tuple(history), style)


def sample_example(index: EmojiIndex, rng: random.Random, tries: int = 20) -> Example:
    for _ in range(tries):
        ex = index.sample(rng)
        if ex is not None:
            return ex
    raise RuntimeError("could not sample a training example (is the data set empty?)")


def r_to_weights(r: float) -> tuple[float, float]:
    """r = w_p / (w_p + w_t) -> (w_p, w_t) normalised so the larger is 1."""
    if r >= 0.5:
        return 1.0, (1 - r) / r if r < 1 else 0.0
    return (r / (1 - r) if r > 0 else 0.0), 1.0
