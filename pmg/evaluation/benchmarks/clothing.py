"""The clothing benchmark: POG-format shoppers with a real personalised ground truth, offline.

Each shopper prefers one or two colours, one pattern and two to four garment families. Their history
is 6-10 garments (Fashion-MNIST shapes rendered in a colour and pattern, ``garments.py``): mostly in
their colours and pattern, sometimes not, with shop titles and short descriptions. The target item
names a garment type only ("casual t-shirt", no colour or pattern); the ground truth is that type in
the shopper's main colour and pattern, drawn from a Fashion-MNIST *test* image (shapes never in a
history). Deterministic; split 8:1:1 by user. Built by ``pmg eval --benchmark clothing`` on first use.

Layout: users/<id>.json (pmg input), images/*.png, ground_truth.json, split.json, info.json
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
from PIL import Image

from pmg.evaluation.benchmarks.emoticons import fresh_layout
from pmg.evaluation.benchmarks.garments import (
    CLASS_WORDS, CLASSES, COLOURS, FASHION_MNIST, PATTERN_WORDS, PATTERNS, load_fashion_mnist, render_garment,
)

__all__ = ["build_clothing_benchmark", "TITLE_EXTRAS", "DESCRIPTIONS"]

TITLE_EXTRAS = ["", "", "casual", "fashion", "classic", "new season", "slim fit", "oversized"]
DESCRIPTIONS = ["cotton, comfortable", "summer, breathable", "warm, winter", "soft fabric, everyday", "student style, youth",
                "lightweight, travel", "office, smart casual", "weekend, relaxed"]


def _title(rng: random.Random, kind: str, colour: str | None, pattern: str | None) -> str:
    words = [rng.choice(TITLE_EXTRAS)]
    if colour:
        words.append(colour)
    if pattern and pattern != "plain":
        words.append(rng.choice(PATTERN_WORDS[pattern]))
    words.append(rng.choice(CLASS_WORDS[kind][:3]))
    title = " ".join(w for w in words if w)
    return title[0].upper() + title[1:]


def build_clothing_benchmark(out: str | Path, n_users: int = 300, seed: int = 0, *, mnist: str | Path = FASHION_MNIST,
                             size: int = 64, min_items: int = 6, max_items: int = 10) -> dict:
    """Build the benchmark into ``out`` (replaced); returns its info dict."""
    out = Path(out)
    train_x, train_y = load_fashion_mnist(mnist, "train")
    test_x, test_y = load_fashion_mnist(mnist, "test")
    by_class_train = {c: np.flatnonzero(train_y == c) for c in range(len(CLASSES))}
    by_class_test = {c: np.flatnonzero(test_y == c) for c in range(len(CLASSES))}
    rng = random.Random(seed)
    colours = sorted(COLOURS)
    fresh_layout(out)
    truth, user_ids = {}, []
    for u in range(n_users):
        uid = f"s{u:04d}"
        liked = rng.sample(colours, rng.choice([1, 2]))
        pattern = rng.choice(PATTERNS)
        families = rng.sample(range(len(CLASSES)), rng.randint(2, 4))
        items = []
        for j in range(rng.randint(min_items, max_items)):
            kind = rng.choice(families)
            colour = liked[0] if rng.random() < 0.55 else (rng.choice(liked) if rng.random() < 0.6 else rng.choice(colours))
            pat = pattern if rng.random() < 0.75 else rng.choice(PATTERNS)
            idx = int(rng.choice(by_class_train[kind]))
            name = f"{uid}_h{j}.png"
            Image.fromarray(render_garment(train_x[idx], colour, pat, size)).save(out / "images" / name)
            items.append({"title": _title(rng, CLASSES[kind], colour, pat), "text": rng.choice(DESCRIPTIONS),
                          "image": f"../images/{name}"})
        target_kind = rng.choice(families) if rng.random() < 0.7 else rng.randrange(len(CLASSES))
        gt_idx = int(rng.choice(by_class_test[target_kind]))
        gt_name = f"{uid}_target.png"
        Image.fromarray(render_garment(test_x[gt_idx], liked[0], pattern, size)).save(out / "images" / gt_name)
        target = {"title": _title(rng, CLASSES[target_kind], None, None), "text": rng.choice(DESCRIPTIONS)}
        user = {"user_id": uid, "scenario": "clothing", "history": items, "conversations": [], "target": {"item": target}}
        (out / "users" / f"{uid}.json").write_text(json.dumps(user, indent=1, ensure_ascii=False, sort_keys=True))
        truth[uid] = {"type": CLASSES[target_kind], "colour": liked[0], "colours": liked, "pattern": pattern,
                      "families": [CLASSES[f] for f in families], "target_image": f"images/{gt_name}"}
        user_ids.append(uid)
    order = list(user_ids)
    random.Random(seed + 1).shuffle(order)
    n_va = n_te = round(0.1 * len(order))  # 8:1:1 by user
    split = {"val": sorted(order[:n_va]), "test": sorted(order[n_va : n_va + n_te]), "train": sorted(order[n_va + n_te :])}
    (out / "ground_truth.json").write_text(json.dumps(truth, indent=1, sort_keys=True))
    (out / "split.json").write_text(json.dumps(split, indent=1))
    info = {"benchmark": "clothing", "seed": seed, "users": len(user_ids), "size": size,
            "split": {k: len(v) for k, v in split.items()},
            "per_colour": {c: sum(1 for v in truth.values() if v["colour"] == c) for c in colours},
            "per_pattern": {p: sum(1 for v in truth.values() if v["pattern"] == p) for p in PATTERNS},
            "per_type": {k: sum(1 for v in truth.values() if v["type"] == k) for k in CLASSES}}
    (out / "info.json").write_text(json.dumps(info, indent=1))
    return info
