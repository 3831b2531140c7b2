"""Garment images a shopper can prefer, composed deterministically from installable data (pure numpy).

Shapes: Debian's ``dataset-fashion-mnist`` (70,000 greyscale 28x28 garments in 10 classes; ``apt-get
install dataset-fashion-mnist``). A garment is rendered at 64 px on white: its greyscale gives the
mask and the shading, a named colour is applied to the shading, a pattern (plain, striped, dotted,
checked, zigzag) is drawn in a contrasting shade inside the mask, and a thin outline keeps white
garments visible. Captions name all three: "a red striped t-shirt".
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from pmg.errors import InputError

__all__ = ["classify_garments", "CLASSES", "CLASS_WORDS", "COLOURS", "PATTERNS", "FASHION_MNIST", "load_fashion_mnist", "render_garment",
           "caption"]

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

# Fashion-MNIST's label order
CLASSES = ("t-shirt", "trousers", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot")
# words a shop title or an LLM uses for each class (the first is the class name)
CLASS_WORDS = {
    "t-shirt": ["t-shirt", "tee", "top", "short sleeves"],
    "trousers": ["trousers", "pants", "jeans", "slacks"],
    "pullover": ["pullover", "sweater", "jumper", "knitwear"],
    "dress": ["dress", "gown", "frock", "sundress"],
    "coat": ["coat", "jacket", "overcoat", "outerwear"],
    "sandal": ["sandal", "sandals", "flip-flops", "open shoe"],
    "shirt": ["shirt", "blouse", "button-down", "long sleeves"],
    "sneaker": ["sneaker", "sneakers", "trainers", "running shoe"],
    "bag": ["bag", "handbag", "tote", "purse"],
    "ankle boot": ["ankle boot", "boots", "booties", "leather boot"],
}
COLOURS = {
    "red": (214, 40, 40), "orange": (245, 130, 30), "yellow": (245, 205, 40), "green": (60, 160, 70),
    "blue": (40, 110, 220), "navy": (25, 40, 100), "purple": (130, 60, 170), "pink": (240, 130, 180),
    "brown": (130, 80, 40), "black": (30, 30, 30), "white": (245, 245, 245), "grey": (140, 140, 140),
}
PATTERNS = ("plain", "striped", "dotted", "checked", "zigzag")
# darkest shade of a garment's colour: at 0.55 the details that tell coats, pullovers and shirts apart
# faded (a scorer read 9% of held-out coats and 12% of shirts right, plain ones no better); 0.3 keeps them
SHADE_FLOOR = 0.3
PATTERN_WORDS = {"plain": ["plain", "solid"], "striped": ["striped", "stripes"], "dotted": ["dotted", "polka dots"],
                 "checked": ["checked", "plaid"], "zigzag": ["zigzag", "chevron"]}


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as fh:
        data = fh.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_fashion_mnist(folder: str | Path = FASHION_MNIST, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [N, 28, 28], labels uint8 [N]) of the train (60,000) or test (10,000) split."""
    folder = Path(folder)
    prefix = {"train": "train", "test": "t10k"}[split]
    img, lab = folder / f"{prefix}-images-idx3-ubyte.gz", folder / f"{prefix}-labels-idx1-ubyte.gz"
    if not img.is_file() or not lab.is_file():
        raise InputError(f"Fashion-MNIST not found in {folder}: apt-get install dataset-fashion-mnist")
    return _read_idx(img), _read_idx(lab)


def _upscale(gray: np.ndarray, size: int) -> np.ndarray:
    """Bilinear upscaling of a [h, w] float image in [0, 1] (no dependency beyond numpy)."""
    h, w = gray.shape
    ys, xs = (np.arange(size) + 0.5) * h / size - 0.5, (np.arange(size) + 0.5) * w / size - 0.5
    y0, x0 = np.clip(np.floor(ys).astype(int), 0, h - 1), np.clip(np.floor(xs).astype(int), 0, w - 1)
    y1, x1 = np.clip(y0 + 1, 0, h - 1), np.clip(x0 + 1, 0, w - 1)
    fy, fx = np.clip(ys - y0, 0, 1)[:, None], np.clip(xs - x0, 0, 1)[None, :]
    top = gray[y0][:, x0] * (1 - fx) + gray[y0][:, x1] * fx
    bottom = gray[y1][:, x0] * (1 - fx) + gray[y1][:, x1] * fx
    return top * (1 - fy) + bottom * fy


def _pattern_mask(pattern: str, size: int) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size]
    period = max(4, size // 8)
    if pattern == "plain":
        return np.zeros((size, size), bool)
    if pattern == "striped":
        return (y % period) < period // 2
    if pattern == "dotted":
        cy, cx = (y % period) - period / 2 + 0.5, (x % period) - period / 2 + 0.5
        return cy**2 + cx**2 <= (period * 0.28) ** 2
    if pattern == "checked":
        return ((y // period) + (x // period)) % 2 == 0
    if pattern == "zigzag":
        return ((y + np.abs((x % period) - period // 2)) % period) < period // 3
    raise ValueError(f"unknown pattern {pattern!r}; one of {', '.join(PATTERNS)}")


def _contrast(rgb: np.ndarray) -> np.ndarray:
    """A second shade for the pattern: white on dark colours, near-black on light ones."""
    lum = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    return np.array([250.0, 250.0, 250.0]) if lum < 150 else np.array([35.0, 35.0, 35.0])


def render_garment(gray28: np.ndarray, colour: str, pattern: str, size: int = 64) -> np.ndarray:
    """uint8 [size, size, 3]: the garment in ``colour`` with ``pattern`` on white."""
    g = _upscale(gray28.astype(np.float32) / 255.0, size)
    mask = g > 0.08
    base = np.array(COLOURS[colour], dtype=np.float32)
    rel = np.clip(g / max(float(g[mask].mean()) if mask.any() else 1.0, 1e-3), 0, 1.4) / 1.4
    shade = SHADE_FLOOR + (1 - SHADE_FLOOR) * rel  # the shape's own shading: zips, plackets, collars stay visible
    body = base[None, None, :] * shade[..., None]
    pat = _pattern_mask(pattern, size) & mask
    body[pat] = _contrast(base) * shade[pat][:, None]
    img = np.full((size, size, 3), 255.0, dtype=np.float32)
    img[mask] = body[mask]
    # outline: mask pixels with a background neighbour, darkened (white garments stay visible)
    edge = mask & ~(np.roll(mask, 1, 0) & np.roll(mask, -1, 0) & np.roll(mask, 1, 1) & np.roll(mask, -1, 1))
    img[edge] = img[edge] * 0.45
    return np.clip(img, 0, 255).astype(np.uint8)


def caption(kind: str, colour: str, pattern: str) -> str:
    """'a red striped t-shirt' ('plain' is left out: 'a red t-shirt')."""
    words = [colour] + ([] if pattern == "plain" else [pattern]) + [kind]
    return ("an " if words[0][0] in "aeiou" else "a ") + " ".join(words)


def classify_garments(scorer, images) -> dict[str, list[str]]:
    """The scorer's reading of each image: the nearest garment type, colour and pattern word (of 10, 12, 5)."""
    import torch

    with torch.no_grad():
        img = scorer.embed_images(images)
        out = {}
        for name, words, values in (("type", list(CLASSES), list(CLASSES)), ("colour", sorted(COLOURS), sorted(COLOURS)),
                                    ("pattern", [PATTERN_WORDS[p][0] for p in PATTERNS], list(PATTERNS))):
            out[name] = [values[i] for i in (img @ scorer.embed_texts(words).T).argmax(1).tolist()]
    return out
