"""Table 4's protocols: which interactions train the recommender, which are held out, and which history
items a user's features (averaged item features, the generated image) may see.

Every protocol works on histories of item indices (one list per user, in history order) and is pure:

    warm         leave-last-out: the held-out item is the most recent item the user has exactly once;
                 every other item is a training edge and visible to the user's features.
    cold-item    a seeded share of the catalogue's items is new: no training edges at all. Users whose
                 leave-last-out item is new are evaluated, on ranking that item among the new items only
                 (recommended from their image features alone, as POG's new garments are). A user's features
                 see the history without the held-out item: the user image of warm, reused.
    sparse-user  a seeded share of the evaluated users are new shoppers: they keep only their first 1-3
                 distinct items (training edges and features alike, the rest of the history is gone) and are
                 evaluated on the warm held-out item; everybody else stays as in warm, and only the new
                 shoppers are evaluated.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["PROTOCOLS", "Split", "heldout_position", "warm_split", "cold_item_split", "sparse_user_split", "make_split",
           "Catalogue", "garment_product", "load_catalogue", "generation_inputs"]

PROTOCOLS = ("warm", "cold-item", "sparse-user")


@dataclass(frozen=True)
class Split:
    train: list[list[int]]  # per user: training items (distinct, sorted)
    visible: list[list[int]]  # per user: history positions the user's features may see
    test: dict[int, list[int]]  # evaluated user -> held-out items
    candidates: list[int] | None = None  # items that may be recommended (None: every item)

    def seen_items(self, user: int, history: list[int]) -> list[int]:
        """The distinct items at the user's visible positions (what the averaged-user feature averages)."""
        return sorted({history[p] for p in self.visible[user]})


def heldout_position(items: list[int]) -> int | None:
    """The most recent position whose item occurs exactly once in the history."""
    for pos in range(len(items) - 1, -1, -1):
        if items.count(items[pos]) == 1:
            return pos
    return None


def warm_split(histories: list[list[int]]) -> Split:
    train, visible, test = [], [], {}
    for u, h in enumerate(histories):
        pos = heldout_position(h)
        if pos is not None:
            test[u] = [h[pos]]
        visible.append([j for j in range(len(h)) if j != pos])
        train.append(sorted({h[j] for j in visible[-1]}))
    return Split(train, visible, test)


def _items_in(histories: list[list[int]]) -> list[int]:
    return sorted({i for h in histories for i in h})


def cold_item_split(histories: list[list[int]], share: float = 0.2, seed: int = 0) -> Split:
    """``share`` of the items (seeded, uniform) are cold: nobody trains on them; users whose warm held-out
    item is cold rank it among the cold items."""
    items = _items_in(histories)
    cold = set(random.Random(seed).sample(items, round(share * len(items))))
    warm = warm_split(histories)
    train = [sorted({i for i in h if i not in cold}) for h in histories]
    test = {u: t for u, t in warm.test.items() if t[0] in cold}
    return Split(train, warm.visible, test, sorted(cold))


def sparse_user_split(histories: list[list[int]], share: float = 0.25, keep: tuple[int, int] = (1, 3),
                      seed: int = 0) -> Split:
    """``share`` of the warm split's evaluated users (seeded) keep only their first k distinct items,
    k uniform in ``keep``; only they are evaluated."""
    warm = warm_split(histories)
    rng = random.Random(seed)
    evaluated = sorted(warm.test)
    sparse = sorted(rng.sample(evaluated, round(share * len(evaluated))))
    train, visible = list(warm.train), list(warm.visible)
    for u in sparse:
        firsts = [p for p in warm.visible[u] if histories[u].index(histories[u][p]) == p]  # first occurrences
        kept = firsts[: rng.randint(*keep)]
        visible[u] = kept
        train[u] = sorted({histories[u][p] for p in kept})
    return Split(train, visible, {u: warm.test[u] for u in sparse})


def make_split(protocol: str, histories: list[list[int]], seed: int = 0) -> Split:
    if protocol == "warm":
        return warm_split(histories)
    if protocol == "cold-item":
        return cold_item_split(histories, seed=seed)
    if protocol == "sparse-user":
        return sparse_user_split(histories, seed=seed)
    from pmg.errors import ConfigError

    raise ConfigError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")


# --- the catalogue a benchmark folder holds -------------------------------------------------------------

@dataclass
class Catalogue:
    users: list[str]
    files: list  # per user: its behaviours JSON file
    items: list[str]  # item keys
    item_images: list  # per item: its picture (Path)
    histories: list[list[int]]  # per user: the item of each history entry that has an image, in order
    positions: list[list[int]]  # per user: those entries' indices in the JSON history


def garment_product(title: str) -> str:
    """A clothing benchmark's shop title -> its product, 'type/colour/pattern' ('Casual red plaid tee' ->
    't-shirt/red/checked'): the titles are built from these word lists (``clothing._title``)."""
    from pmg.evaluation.benchmarks.garments import CLASS_WORDS, COLOURS, PATTERN_WORDS

    low = title.lower()
    kinds = [(w, k) for k, ws in CLASS_WORDS.items() for w in ws[:3] if low == w or low.endswith(" " + w)]
    if not kinds:
        raise ValueError(f"no garment type in {title!r}")
    word, kind = max(kinds, key=lambda t: len(t[0]))
    tokens = low[: len(low) - len(word)].split()
    at = [j for j, t in enumerate(tokens) if t in COLOURS]
    if not at:
        raise ValueError(f"no colour in {title!r}")
    rest = " ".join(tokens[at[-1] + 1 :])
    pattern = next((p for p, ws in PATTERN_WORDS.items() if rest in ws), None) if rest else "plain"
    if pattern is None:
        raise ValueError(f"unknown pattern {rest!r} in {title!r}")
    return f"{kind}/{tokens[at[-1]]}/{pattern}"


def load_catalogue(bench, limit: int | None = None) -> Catalogue:
    """The users of a benchmark folder (the first ``limit`` by file name) and the items they share: an
    emoji picture is an item; a clothing benchmark's garment pictures are each drawn once, so there a
    product (type, colour, pattern, read from the shop title) is the item, pictured by its first
    rendering in the benchmark (by user, then history position), as a shop lists one photo per product."""
    import json
    from pathlib import Path

    from pmg.errors import InputError

    bench = Path(bench)
    info = bench / "info.json"
    clothing = info.is_file() and json.loads(info.read_text(encoding="utf-8")).get("benchmark") == "clothing"
    users, files, keyed = [], [], []
    for f in sorted((bench / "users").glob("*.json"))[:limit]:
        data = json.loads(f.read_text(encoding="utf-8"))
        entries = [(j, garment_product(it["title"]) if clothing else None, (f.parent / it["image"]).resolve())
                   for j, it in enumerate(data["history"]) if it.get("image")]
        if entries:
            users.append(data.get("user_id", f.stem))
            files.append(f)
            keyed.append([(j, key or str(path), path) for j, key, path in entries])
    if not users:
        raise InputError(f"{bench}: no users with item images (Table 4 needs a benchmark with item images)")
    picture = {}
    for entries in keyed:
        for _, key, path in entries:
            picture.setdefault(key, path)
    keys = sorted(picture)
    index = {k: i for i, k in enumerate(keys)}
    histories = [[index[k] for _, k, _ in e] for e in keyed]
    holders = [len({u for u, h in enumerate(histories) if i in h}) for i in range(len(keys))] if len(users) > 1 else [2]
    if max(holders) < 2:
        raise InputError(f"{bench}: no item image is shared by two users (each history item is its own picture), "
                         "so a recommender has nothing to learn; Table 4 needs a catalogue, as the emoticon benchmark has")
    names = [k if clothing else Path(k).stem for k in keys]
    return Catalogue(users, files, names, [picture[k] for k in keys], histories, [[j for j, _, _ in e] for e in keyed])


def generation_inputs(cat: Catalogue, visible: dict[int, list[int]], out) -> list[str]:
    """Each listed user's behaviours with only their visible history entries (image paths absolute), as
    ``pmg batch`` input in ``out``; users with nothing visible are left out. Returns the ids written."""
    import json
    from pathlib import Path

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for u, pos in sorted(visible.items()):
        if not pos:
            continue
        f = cat.files[u]
        user = json.loads(f.read_text(encoding="utf-8"))
        hist = [dict(user["history"][cat.positions[u][p]]) for p in pos]
        for it in hist:
            it["image"] = str((f.parent / it["image"]).resolve())
        (out / f.name).write_text(json.dumps(dict(user, history=hist), ensure_ascii=False), encoding="utf-8")
        written.append(cat.users[u])
    return written
