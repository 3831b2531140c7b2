"""pmg-mini-fashion training examples: garments in PMG's conditioning format (numpy, no torch).

Garments are rendered on the fly (``pmg.evaluation.benchmarks.garments``): a Fashion-MNIST shape in
a named colour and pattern. As in ``compose.py`` each example simulates a shopper -- main colour, a
second colour, a pattern, garment families, a history of 4-9 garments -- and a target item that names a
garment type (and sometimes a colour), with the LLM's kind of keywords in each window, a weight ratio
r = w_p / (w_p + w_t), and the image the grid should show at r:

    r = 0 (0:4)          the target type, in the target's colour when it names one, else any colour/pattern
    0 < r < 0.35         the target type in the shopper's main colour (pattern: the target's, or plain)
    0.35 <= r <= 0.65    the target type in the shopper's main colour **and** pattern (the composition)
    0.65 < r < 1         the shopper's most frequent garment type in their colour and pattern; with
                         ``keep_type`` (the shipped fine-tune) the target type in them: in a shop the
                         target item is what is shown, the preference only dresses it
    r = 1 (4:0)          one of the history's garments

(type, colour, pattern) combinations with ``is_heldout`` are never rendered for training: the
composition check runs on them.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

import numpy as np

from pmg.evaluation.benchmarks.garments import CLASS_WORDS, CLASSES, COLOURS, PATTERN_WORDS, PATTERNS, caption
from training.pmg_mini.compose import BAND_PROBS, GRID_BANDS

__all__ = ["Garment", "GarmentExample", "GarmentSource", "GarmentRenderer", "ShopperExamples", "is_heldout",
           "garment_captions", "shop_keyword_lists"]

COLOUR_NAMES = sorted(COLOURS)
DESCRIPTORS = ["casual", "cotton", "comfortable", "summer", "warm", "fashion", "classic", "soft", "everyday", "youth style"]
# what shop titles and descriptions add around a garment, and what a small LLM echoes from them
# (``rich_words``: the second training phase; the benchmark's own title and description words are among them)
SHOP_WORDS = DESCRIPTORS + ["breathable", "winter", "soft fabric", "student style", "youth", "lightweight", "travel",
                            "office", "smart casual", "weekend", "relaxed", "new season", "slim fit", "oversized",
                            "fashionable", "trendy", "elegant", "sporty", "vintage", "seasonal", "season", "clothes",
                            "outfit", "wardrobe", "style", "quality", "premium", "basic", "modern", "stylish"]
# the words a shop title puts before the type ("slim fit jeans", "classic frock")
TITLE_WORDS = SHOP_WORDS[:7] + ["new season", "slim fit", "oversized"]
OFF_TOPIC = ["plants", "food", "music", "travel", "home", "sports", "books", "gifts", "nature", "shopping"]


@dataclass(frozen=True)
class Garment:
    kind: int  # class index
    colour: str
    pattern: str


@dataclass
class GarmentExample:
    target: list[str]
    preference: list[str]
    r: float
    garment: Garment
    band: str


def is_heldout(kind: int, colour: str, pattern: str) -> bool:
    """One combination in ten, fixed by a hash: kept out of every training image."""
    return hashlib.sha1(f"{CLASSES[kind]}|{colour}|{pattern}".encode()).digest()[0] % 10 == 0


def garment_captions(g: Garment) -> list[str]:
    """Caption variants of a garment (for the scorer): full, type, colour, pattern, pairs."""
    kind, pat = CLASSES[g.kind], PATTERN_WORDS[g.pattern][0]
    return [caption(kind, g.colour, g.pattern), kind, g.colour, pat, f"{g.colour} {kind}", f"{pat} {kind}",
            f"{g.colour} {pat}", ", ".join([kind, g.colour, pat])]


def shop_keyword_lists(per_key: int = 60, seed: int = 0) -> dict[str, list[str]]:
    """Keyword lists worded as the keyword stage writes them for shop items (``GarmentSource(rich_words=True)``),
    a fixed pool per key, for the scorer to read them as ``select`` does (d_t, d_p):
    ``"type:<class>"``: target lists naming that garment type ("casual sneakers, soft fabric, everyday");
    ``"look:<colour>|<pattern>"``: preference lists of a shopper whose favourite colour and pattern these are
    (other colours, types and off-topic words around them). Held-out combinations play no part: the lists
    carry no image."""
    rng, src = random.Random(seed), GarmentSource(rich_words=True)
    pools: dict[str, list[str]] = {}
    for k, kind in enumerate(CLASSES):
        pools[f"type:{kind}"] = _distinct(lambda: src.target_words(k, None, rng), per_key)
    for colour in COLOUR_NAMES:
        for pattern in PATTERNS:
            def history() -> list[Garment]:
                others = [Garment(rng.randrange(len(CLASSES)), rng.choice(COLOUR_NAMES), rng.choice(PATTERNS))]
                return [Garment(rng.randrange(len(CLASSES)), colour, pattern) for _ in range(rng.randint(3, 6))] + others
            pools[f"look:{colour}|{pattern}"] = _distinct(lambda: src.preference_words(history(), rng), per_key,
                                                          keep=lambda w: favourite_named(w, colour, pattern))
    return pools


def favourite_named(words: list[str], colour: str, pattern: str) -> bool:
    """Does a preference list name this colour and one of this pattern's words?"""
    return colour in words and bool(set(words) & set(PATTERN_WORDS[pattern]))


def _distinct(draw, n: int, keep=lambda words: True, tries: int = 50) -> list[str]:
    out: dict[str, None] = {}
    for _ in range(n * tries):
        words = draw()
        if keep(words):
            out[", ".join(words)] = None
        if len(out) == n:
            break
    return list(out)


def favourite(history: list[Garment]) -> tuple[str, str]:
    """The history's most frequent colour and pattern (ties: the earliest)."""
    colours = [g.colour for g in history]
    patterns = [g.pattern for g in history]
    return max(colours, key=lambda c: (colours.count(c), -colours.index(c))), \
        max(patterns, key=lambda p: (patterns.count(p), -patterns.index(p)))


class GarmentSource:
    """Simulated shoppers and their training examples.

    Args:
        keep_type: at 3:1 the target's type in the shopper's colour and pattern (else their favourite type).
        rich_words: the keyword windows as the LLM writes them for real shop items: the type inside a
            title phrase ("slim fit jeans", "classic t shirt"), shop and description words around it
            ("weekend, relaxed"), off-topic words in the preference ("plants, seasonal").
        band_probs: how often each band of ``GRID_BANDS`` is drawn (default ``BAND_PROBS``); e.g. more
            "favourite" rows to teach 3:1 the target's type.
    """

    def __init__(self, keep_type: bool = False, rich_words: bool = False, band_probs: dict[str, float] | None = None):
        self.keep_type, self.rich_words = keep_type, rich_words
        self.band_probs = dict(band_probs or BAND_PROBS)
        self.descriptors = SHOP_WORDS if rich_words else DESCRIPTORS

    @staticmethod
    def allowed(g: Garment) -> bool:
        return not is_heldout(g.kind, g.colour, g.pattern)

    def _garment(self, kind: int, colour: str, pattern: str) -> Garment | None:
        g = Garment(kind, colour, pattern)
        return g if self.allowed(g) else None

    def target_words(self, kind: int, colour: str | None, rng: random.Random) -> list[str]:
        words = rng.sample(CLASS_WORDS[CLASSES[kind]], k=rng.randint(1, 3))
        if CLASSES[kind] not in words and rng.random() < 0.7:
            words.insert(0, CLASSES[kind])
        if self.rich_words:
            words = [w.replace("-", " ") if rng.random() < 0.3 else w for w in words]
            if rng.random() < 0.6:  # "slim fit jeans": the title's extra word glued to a type word
                extra = rng.choice(TITLE_WORDS)
                words[0] = f"{extra} {words[0]}"
                if rng.random() < 0.3:
                    words.insert(0, extra)
            if rng.random() < 0.3:
                rng.shuffle(words)
        words += rng.sample(self.descriptors, k=rng.randint(0, 2))
        if colour:
            words.insert(rng.randint(0, 1), colour)
        return list(dict.fromkeys(words))[:5]

    def preference_words(self, history: list[Garment], rng: random.Random) -> list[str]:
        """Ranked words of the history's titles; the most frequent colour and pattern always among them
        (what the keyword stage ranks first for a shopper)."""
        counts: dict[str, float] = {}
        for g in history:
            for w, c in ((g.colour, 1.0), (rng.choice(PATTERN_WORDS[g.pattern]), 0.9),
                         (rng.choice(CLASS_WORDS[CLASSES[g.kind]][:3]), 0.6)):
                counts[w] = counts.get(w, 0) + c
        ranked = sorted(counts, key=lambda w: (-counts[w], w))
        words = ranked[: rng.randint(2, 7)]
        colour, pattern = favourite(history)
        for must in (colour, rng.choice(PATTERN_WORDS[pattern])):
            if must not in words and not (must in PATTERN_WORDS[pattern] and set(words) & set(PATTERN_WORDS[pattern])):
                words.insert(rng.randint(0, len(words)), must)
        for _ in range(rng.choice((0, 0, 1, 2))):  # off-topic words the LLM adds
            words.insert(rng.randint(0, len(words)), rng.choice(self.descriptors))
        if self.rich_words and rng.random() < 0.3:
            words.insert(rng.randint(0, len(words)), rng.choice(OFF_TOPIC))
        return list(dict.fromkeys(words))[:10]

    def sample(self, rng: random.Random) -> GarmentExample | None:
        main, second = rng.sample(COLOUR_NAMES, 2)
        pattern = rng.choice(PATTERNS)
        families = rng.sample(range(len(CLASSES)), rng.randint(1, 3))
        history = []
        for _ in range(rng.randint(4, 9)):
            colour = main if rng.random() < 0.6 else (second if rng.random() < 0.6 else rng.choice(COLOUR_NAMES))
            pat = pattern if rng.random() < 0.75 else rng.choice(PATTERNS)
            history.append(Garment(rng.choice(families), colour, pat))
        main, pattern = favourite(history)  # what the preference words name first
        kind = rng.choice(families) if rng.random() < 0.5 else rng.randrange(len(CLASSES))
        t_colour = rng.choice(COLOUR_NAMES) if rng.random() < 0.3 else None
        band = rng.choices(list(self.band_probs), weights=list(self.band_probs.values()))[0]
        lo, hi = GRID_BANDS[band]
        r = lo if lo == hi else rng.uniform(lo, hi)
        if band == "target":
            g = self._garment(kind, t_colour or rng.choice(COLOUR_NAMES), rng.choice(PATTERNS))
        elif band == "style":
            g = self._garment(kind, main, "plain")
        elif band == "compose" or (band == "favourite" and self.keep_type):
            g = self._garment(kind, main, pattern)
        elif band == "favourite":
            fav = max(families, key=lambda f: (sum(h.kind == f for h in history), -f))
            g = self._garment(fav, main, pattern)
        else:
            g = rng.choice(history)
            g = g if self.allowed(g) else None
        if g is None:
            return None
        return GarmentExample(self.target_words(kind, t_colour, rng), self.preference_words(history, rng), r, g, band)

    def sample_plain(self, rng: random.Random) -> tuple[str, Garment]:
        """A single caption (v1-style row): 'a red striped t-shirt' or a shuffled keyword list."""
        while True:
            g = Garment(rng.randrange(len(CLASSES)), rng.choice(COLOUR_NAMES), rng.choice(PATTERNS))
            if self.allowed(g):
                break
        text = caption(CLASSES[g.kind], g.colour, g.pattern) if rng.random() < 0.5 else ", ".join(
            rng.sample(garment_captions(g)[2:], k=1) + [CLASSES[g.kind]])
        return text, g


class GarmentRenderer:
    """Draws garments from random Fashion-MNIST shapes of their class."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, size: int = 64):
        self.images, self.size = images, size
        self.by_class = {c: np.flatnonzero(labels == c) for c in range(len(CLASSES))}

    def __call__(self, garments: list[Garment], rng: random.Random) -> np.ndarray:
        """uint8 [n, size, size, 3]."""
        from pmg.evaluation.benchmarks.garments import render_garment

        return np.stack([render_garment(self.images[int(rng.choice(self.by_class[g.kind]))], g.colour, g.pattern, self.size)
                         for g in garments])


class ShopperExamples:
    """The keyword stage's real outputs for the clothing benchmark's train shoppers (``bench_examples``)
    with the images they should give: the ground truth (the target type in the shopper's colour and
    pattern) at a ratio the model grid composes at (``p_target`` of them at 0:4, where only the type is
    read), else one of the shopper's history garments at 4:0 (``p_history``)."""

    def __init__(self, path, size: int = 64, p_target: float = 0.15, p_history: float = 0.2):
        import json
        from pathlib import Path

        rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
        self.rows = [r for r in rows if r.get("target") and "truth_image" in r]
        if not self.rows:
            raise ValueError(f"{path}: no clothing rows (with truth_image and target keywords); "
                             "build them with bench_examples --bench <a clothing benchmark>")
        paths = sorted({p for r in self.rows for p in [r["truth_image"], *r["history_images"]]})
        self.images = {p: _load_rgb(p, size) for p in paths}
        self.p_target, self.p_history = p_target, p_history

    def sample(self, rng: random.Random) -> tuple[str, str, float, np.ndarray]:
        """(target text, preference text, r, uint8 image [size, size, 3])."""
        r = rng.choice(self.rows)
        u = rng.random()
        if u < self.p_target:
            ratio, image = 0.0, r["truth_image"]
        elif u < 1 - self.p_history or not r["history_images"]:
            ratio, image = rng.uniform(GRID_BANDS["compose"][0], GRID_BANDS["favourite"][1]), r["truth_image"]
        else:
            ratio, image = 1.0, rng.choice(r["history_images"])
        return ", ".join(r["target"]), ", ".join(r["preference"]), ratio, self.images[image]


def _load_rgb(path: str, size: int) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        return np.asarray(im if im.size == (size, size) else im.resize((size, size), Image.LANCZOS))


def build_scorer_data(out, mnist=None, per_combo: int = 16, heldout_per_combo: int = 4, seed: int = 0) -> dict:
    """A data folder in ``build_data``'s format for the fashion scorer: every allowed (type, colour,
    pattern) drawn ``per_combo`` times from Fashion-MNIST's train shapes (split "train"), every held-out
    one ``heldout_per_combo`` times from its test shapes (split "heldout"); meta rows carry ``captions``."""
    import json
    from pathlib import Path

    from pmg.evaluation.benchmarks.garments import FASHION_MNIST, load_fashion_mnist

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    renderers = {s: GarmentRenderer(*load_fashion_mnist(mnist or FASHION_MNIST, s)) for s in ("train", "test")}
    images, meta = [], []
    for kind in range(len(CLASSES)):
        for colour in COLOUR_NAMES:
            for pattern in PATTERNS:
                g = Garment(kind, colour, pattern)
                held = is_heldout(kind, colour, pattern)
                n, split = (heldout_per_combo, "heldout") if held else (per_combo, "train")
                images.append(renderers["test" if held else "train"]([g] * n, rng))
                meta += [{"label": CLASSES[kind], "tags": [colour, PATTERN_WORDS[pattern][0]], "style": "fashion",
                          "kind": CLASSES[kind], "colour": colour, "pattern": pattern, "split": split,
                          "captions": garment_captions(g)}] * n
    np.save(out / "images.npy", np.concatenate(images))
    (out / "meta.jsonl").write_text("".join(json.dumps(m) + "\n" for m in meta))
    summary = {"images": len(meta), "train": sum(m["split"] == "train" for m in meta),
               "heldout": sum(m["split"] == "heldout" for m in meta),
               "heldout_combinations": sum(is_heldout(k, c, p) for k in range(len(CLASSES)) for c in COLOUR_NAMES for p in PATTERNS)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="Build the fashion scorer's data folder (garments x colours x patterns).")
    ap.add_argument("--out", default="data/pmg-mini-fashion")
    ap.add_argument("--mnist", default=None, help="Fashion-MNIST folder (default: Debian's dataset-fashion-mnist)")
    a = ap.parse_args()
    print(build_scorer_data(a.out, a.mnist))
