"""The open-theme emoticon benchmark: chat users whose favourites come from any part of the emoji set.

The emoticon benchmark (``emoticons.py``) draws its users from eight themes (cats, dogs, yellow faces,
food, sports, hearts, animals, plants). Here every theme is an emoji **subgroup** that none of those
eight touches (Unicode's emoji-test subgroups, as ``emojibase-data`` names them: ``tool``,
``transport-ground``, ``sky-weather``, ``musical-instrument``, ``clothing``, ``place-building`` ...).
A user has one art style, 3-8 distinct favourites of one such subgroup (drawn with real usage
frequencies, some used again), each item with its CLDR annotation keywords as text, a line of
conversation about one of them and a message with a mood. The ground truth is the emoji such
a user would send, in their style:

1. the theme's own version of the message's mood, where the theme has one (its label is the mood
   face's label with "face" swapped for the theme's subject, e.g. "grinning face" -> "grinning cat");
2. else the theme's emoji whose annotation (label and CLDR keywords) shares the most words with the
   message and the mood's words (``pmg.keywords.moods.MOOD_WORDS``), ties broken by usage;
3. else the user's favourite: their most used history emoji (ties by overall usage).

Themes, not users, are split 70/15/15 into train/val/test (seeded), so a test theme is never seen in
training or when tuning thresholds. ``theme_names`` in the ground truth are the words that count as
naming the theme: the subgroup's own words, but vague ones ("other", "person", "symbol" ...); a subgroup
with no such word ("av-symbol") is no theme. ``theme_named`` also takes a keyword within MiniLM cosine 0.6
of the subgroup's words, as the emoticon benchmark's keyword check does.

    pmg eval --benchmark emoticons-open ...     (builds it on first use from the pmg-mini art folder)

Layout as ``emoticons``: users/<id>.json, images/<hex>_<style>.png, ground_truth.json, split.json, info.json
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from pmg.evaluation.benchmarks.emoticons import MOOD_TARGETS, MOODS, STYLES, THEMES, usage_weight, fresh_layout, load_art, save_images
from pmg.keywords.moods import MOOD_WORDS

__all__ = ["build_open_theme_benchmark", "open_subgroups", "split_themes", "ground_truth_emoji", "theme_names",
           "names_theme", "theme_named", "closed_subgroups"]

# conversation lines about one favourite ({x}: its label)
TALK = ("look at this {x}!", "have you seen my {x}?", "I can't stop using the {x} one", "{x} again today, as always",
        "thinking about the {x} from yesterday")
# subgroup words too vague to name a taste on their own
VAGUE = {"other", "object", "objects", "symbol", "symbols", "person", "place", "ground", "face", "body",
         "part", "parts", "alphanum", "av", "event", "open", "closed", "partial", "single"}
ENDINGS = ("s", "es", "al", "ed", "ing", "er", "ers")  # a theme name's forms that still name it
MIN_POOL = 4  # distinct emoji of the subgroup in a style, for 3-8 favourites


def _concepts(meta: list[dict]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for m in meta:
        out.setdefault(m["hexcode"], m)
    return out


def closed_subgroups(concepts: dict[str, dict]) -> set[str]:
    """Subgroups that any of the emoticon benchmark's eight themes draws from."""
    return {m["subgroup"] for m in concepts.values() if any(pred(m) for pred in THEMES.values())}


def open_subgroups(meta: list[dict]) -> dict[str, dict[str, list[str]]]:
    """{subgroup: {style: sorted hexcodes}} for every subgroup outside the eight themes with at least
    ``MIN_POOL`` emoji in some generator style (``STYLES``) and a name (``theme_names``: "av-symbol" has none)."""
    concepts = _concepts(meta)
    closed = closed_subgroups(concepts)
    have = {(m["hexcode"], m["style"]) for m in meta if m["style"] in STYLES}
    pools: dict[str, dict[str, list[str]]] = {}
    for h, m in sorted(concepts.items()):
        if m["subgroup"] in closed:
            continue
        for s in STYLES:
            if (h, s) in have:
                pools.setdefault(m["subgroup"], {}).setdefault(s, []).append(h)
    return {g: {s: hs for s, hs in by.items() if len(hs) >= MIN_POOL} for g, by in sorted(pools.items())
            if any(len(hs) >= MIN_POOL for hs in by.values()) and theme_names(g)}


def split_themes(themes: list[str], seed: int) -> dict[str, list[str]]:
    """Themes 70/15/15 into train/val/test, seeded; val and test get at least one theme each."""
    order = sorted(themes)
    random.Random(seed + 2).shuffle(order)
    n_val = n_test = max(1, round(0.15 * len(order)))
    return {"test": sorted(order[:n_test]), "val": sorted(order[n_test : n_test + n_val]),
            "train": sorted(order[n_test + n_val :])}


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def theme_names(subgroup: str) -> list[str]:
    """Words that name a theme: the subgroup's own words, vague ones (``VAGUE``) left out:
    "hand-fingers-partial" -> hand, fingers; "av-symbol" -> none."""
    return [w for w in re.split(r"[-&\s]+", subgroup.lower()) if w and w not in VAGUE]


def names_theme(keyword: str, names: list[str]) -> bool:
    """Whether a keyword names the theme: one of its words is a theme name or the name with a short ending
    ("sports" names "person-sport", "musical" names "music", "locked" names "lock"; "toolbox" is not "tool")."""
    from pmg.keywords.parse import singular

    words = re.findall(r"[a-z]+", keyword.lower())
    stems = {singular(n) for n in names} | set(names)  # "arts" is named by "art"
    return any(w == n or (w.startswith(n) and w[len(n):] in ENDINGS) for w in words for n in stems)


def theme_named(keywords: list[str], names: list[str], theme: str, embed=None, threshold: float = 0.6) -> bool:
    """Whether the keywords name the theme: one holds a theme name (``names_theme``), or, with ``embed``
    (MiniLM sentence embeddings), one is within cosine ``threshold`` of the theme's own words ("telephone"
    for ``phone``, "medicine" for ``medical``), the emoticon benchmark's rule."""
    if any(names_theme(k, names) for k in keywords):
        return True
    if embed is None or not keywords:
        return False
    return float((embed(list(keywords)) @ embed([theme.replace("-", " ")]).T).max()) >= threshold


def ground_truth_emoji(members: list[str], concepts: dict[str, dict], mood: str, message: str,
                       history: list[str], usage: dict[str, float]) -> tuple[str, str]:
    """(hexcode, rule) of the emoji a user of this theme would send (the module docstring's rules 1-3)."""
    face = concepts.get(MOOD_TARGETS[mood]["default"])
    if face is not None:
        fl = face["label"].lower().split()
        for h in members:
            ml = concepts[h]["label"].lower().split()
            if len(ml) == len(fl) and any(ml[:i] + ["face"] + ml[i + 1 :] == fl for i in range(len(ml))):
                return h, "mood variant"
    want = set(MOOD_WORDS[mood]) | _words(message)
    scored = []
    for h in members:
        m = concepts[h]
        ann = _words(m["label"]) | {t.lower() for t in m["tags"]}
        shared = len(ann & want)
        if shared:
            scored.append((-shared, -usage.get(h, 1.0), h))
    if scored:
        return min(scored)[2], "shares the message's words"
    fav = max(dict.fromkeys(history), key=lambda h: (history.count(h), usage.get(h, 1.0), h))
    return fav, "favourite"


def _favourites(rng: random.Random, pool: list[str], usage: dict[str, float], lo: int, hi: int) -> list[str]:
    """A history: 3-8 distinct favourites drawn by usage (without replacement), then 0-3 of them used again."""
    left, fav = list(pool), []
    for _ in range(rng.randint(lo, min(hi, len(pool)))):
        pick = rng.choices(left, weights=[usage[p] for p in left])[0]
        fav.append(pick)
        left.remove(pick)
    again = [rng.choices(fav, weights=[usage[p] for p in fav])[0] for _ in range(rng.randint(0, 3))]
    history = fav + again
    rng.shuffle(history)
    return history


def _sample_user(rng: random.Random, uid: str, theme: str, pools: dict[str, list[str]], concepts: dict[str, dict],
                 usage: dict[str, float], min_items: int, max_items: int) -> tuple[dict, dict, set]:
    """One user of ``theme`` (style, favourites, a line about one of them, a message with a mood), its ground
    truth and the (hexcode, style) images it uses."""
    style = sorted(pools)[rng.randrange(len(pools))]
    pool = pools[style]
    mood = sorted(MOODS)[rng.randrange(len(MOODS))]
    message = rng.choice(MOODS[mood])
    history = _favourites(rng, pool, usage, min_items, max_items)
    target, rule = ground_truth_emoji(pool, concepts, mood, message, history, usage)
    items = [{"title": concepts[h]["label"], "text": ", ".join(concepts[h]["tags"]),
              "image": f"../images/{h}_{style}.png", "attributes": {"style": style}} for h in history]
    talk = rng.choice(TALK).format(x=concepts[rng.choice(history)]["label"])
    user = {"user_id": uid, "scenario": "emoticon", "history": items, "conversations": [talk], "target": {"message": message}}
    truth = {"style": style, "theme": theme, "theme_group": concepts[pool[0]]["group"], "mood": mood,
             "theme_names": theme_names(theme), "target_hexcode": target, "target_label": concepts[target]["label"],
             "target_rule": rule, "target_image": f"images/{target}_{style}.png"}
    return user, truth, {(h, style) for h in history} | {(target, style)}


def build_open_theme_benchmark(art: str | Path, out: str | Path, n_users: int = 300, seed: int = 0,
                               min_items: int = 3, max_items: int = 8) -> dict:
    """Build the benchmark into ``out`` (replaced); returns its info dict."""
    out = Path(out)
    meta, images = load_art(art)
    index = {(m["hexcode"], m["style"]): i for i, m in enumerate(meta) if m["style"] in STYLES}
    concepts = _concepts(meta)
    pools = open_subgroups(meta)
    themes = split_themes(list(pools), seed)
    theme_split = {t: s for s, ts in themes.items() for t in ts}
    usage = {h: usage_weight(m["emoji"]) for h, m in concepts.items()}
    rng = random.Random(seed)
    fresh_layout(out)
    used: set[tuple[str, str]] = set()
    truth: dict[str, dict] = {}
    split: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    theme_list = sorted(pools)
    for u in range(n_users):
        uid = f"o{u:04d}"
        theme = theme_list[rng.randrange(len(theme_list))]
        user, truth[uid], keys = _sample_user(rng, uid, theme, pools[theme], concepts, usage, min_items, max_items)
        used |= keys
        split[theme_split[theme]].append(uid)
        (out / "users" / f"{uid}.json").write_text(json.dumps(user, indent=1, ensure_ascii=False, sort_keys=True))
    save_images(out / "images", images, index, used)
    (out / "ground_truth.json").write_text(json.dumps(truth, indent=1, sort_keys=True))
    (out / "split.json").write_text(json.dumps(split, indent=1))
    info = {"benchmark": "emoticons-open", "seed": seed, "users": len(truth), "images": len(used),
            "split": {k: len(v) for k, v in split.items()}, "themes": themes,
            "target_rules": {r: sum(1 for v in truth.values() if v["target_rule"] == r)
                             for r in ("mood variant", "shares the message's words", "favourite")},
            "per_style": {s: sum(1 for v in truth.values() if v["style"] == s) for s in STYLES}}
    (out / "info.json").write_text(json.dumps(info, indent=1))
    return info
