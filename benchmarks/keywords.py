"""Keyword quality and speed on the benchmarks' test users, for one configuration, measured in one run.

    .venv/bin/python benchmarks/keywords.py                            # this version: llama.cpp, JSON, grounded
    .venv/bin/python benchmarks/keywords.py --backend transformers --free-text --no-ground   # as before

    .venv/bin/python benchmarks/keywords.py --style-from-images      # items' art style from their images only

Prints, over the emoticon benchmark's test users, the open-theme emoticon benchmark's test users (themes
never seen in tuning) and the MovieLens test users:
* theme recovered: a preference keyword names the user's planted theme (emoticons; by its words, e.g.
  "cat"/"kitten" for cats, or a MiniLM cosine >= 0.6 to the theme's name); open themes: a keyword holds
  one of the theme's names ("tool" for the subgroup ``tool``) or is within MiniLM cosine 0.6 of them
  (``open_themes.theme_named``);
* genre coverage: share of the user's top-3 history genres named (movies);
* junk rate: keywords that are neither English words or phrases (wordfreq) nor present in the user's
  behaviours, lone stop-words, or words echoed from the prompt and absent from the behaviours;
* mood named: a target keyword is one of the message's mood words (``pmg.keywords.moods``);
* seconds per user, cold (empty cache, one user at a time) and batched (all users in one call).
Not a test: numbers depend on the machine. Stop background jobs first.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pmg.behaviours.schema import load_user  # noqa: E402
from pmg.behaviours.to_text import without_labels  # noqa: E402
from pmg.evaluation.stats import bootstrap_ci  # noqa: E402
from pmg.keywords.extract import build_extractor  # noqa: E402
from pmg.keywords.ground import content_words, is_english  # noqa: E402
from pmg.keywords.moods import MOOD_WORDS  # noqa: E402
from pmg.keywords.parse import STOPWORDS, normalize_keyword  # noqa: E402
from pmg.keywords.templates import load_prompt_set  # noqa: E402

THEME_WORDS = {
    "cats": {"cat", "kitten", "kitty", "feline"}, "dogs": {"dog", "puppy", "doggy", "poodle", "canine"},
    "yellow faces": {"face", "smiley", "emoji", "emoticon", "expression"}, "food": {"food", "meal", "dish", "snack", "fruit"},
    "sports": {"sport", "ball", "game", "athletic"}, "hearts": {"heart", "love"},
    "animals": {"animal", "mammal", "bird", "wildlife", "zoo"}, "plants": {"plant", "flower", "tree", "garden", "leaf"},
}


def junk(keyword: str, behaviours: str, prompt_words: set[str]) -> bool:
    words = normalize_keyword(keyword).split()
    have = set(normalize_keyword(behaviours).split())
    if not words or (len(words) == 1 and words[0] in STOPWORDS):
        return True
    present = any(w in have for w in content_words(keyword))
    if not present and set(words) <= prompt_words:
        return True  # the prompt echoed back
    return not (present or is_english(keyword))


def user_text(user) -> str:
    parts = [f"{it.title} {it.text} {' '.join(it.attributes.values())}" for it in user.history]
    parts += user.conversations + [user.target.message or ""]
    if user.target.item:
        parts += [user.target.item.title, user.target.item.text, " ".join(user.target.item.attributes.values())]
    return " ".join(parts)


def run(ext, users, batched: bool) -> tuple[list, float]:
    t0 = time.perf_counter()
    res = ext.batch(users) if batched else [ext(u) for u in users]
    return res, time.perf_counter() - t0


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llm", default="smollm2")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--free-text", action="store_true", help="no JSON-constrained decoding")
    ap.add_argument("--no-ground", action="store_true", help="no grounding in the behaviours")
    ap.add_argument("--emoticons", type=Path, default=Path("data/benchmarks/emoticons"))
    ap.add_argument("--open", type=Path, default=Path("data/benchmarks/emoticons-open"))
    ap.add_argument("--movies", type=Path, default=Path("data/benchmarks/movies"))
    ap.add_argument("--style-from-images", action="store_true",
                    help="emoticon items lose their attributes: the art style comes from the tagger's image captions")
    ap.add_argument("--only", default=None, help="comma-separated benchmarks to run (emoticons, open, movies)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--no-batched", action="store_true", help="skip the batched run (cold one-at-a-time only)")
    return ap.parse_args()


def load_sets(a) -> dict[str, tuple[list, dict, list[str]]]:
    """(users, ground truth, ids) of each benchmark that is built."""
    sets = {}
    only = set(a.only.split(",")) if a.only else None
    for name, bench in (("emoticons", a.emoticons), ("open", a.open), ("movies", a.movies)):
        if only is not None and name not in only:
            continue
        if not (bench / "split.json").is_file():
            print(f"{bench}: not built (pmg eval --benchmark {name} builds it); skipped")
            continue
        ids = json.loads((bench / "split.json").read_text())[a.split][: a.limit]
        users = [load_user(bench / "users" / f"{i}.json") for i in ids]
        if a.style_from_images and name != "movies":
            users = [u.model_copy(update={"history": [h.model_copy(update={"attributes": {}}) for h in u.history]})
                     for u in users]
        sets[name] = (users, json.loads((bench / "ground_truth.json").read_text()), ids)
    return sets


def timed_keywords(a, users) -> tuple[list, float, list, float]:
    """Keywords cold one user at a time (no cache), then batched (a fresh cache): results and seconds of each."""
    with tempfile.TemporaryDirectory() as tmp:
        captioner = None
        if a.style_from_images and users[0].scenario.value == "emoticon":
            from pmg.api import build_captioner
            from pmg.scoring.scorers import load_scorer

            captioner = build_captioner("tagger", load_scorer("pmg-mini"), "pmg-mini")

        def extractor(cache_dir):
            return build_extractor(a.llm, backend=a.backend, threads=a.threads, model_cache_dir=Path.home() / ".cache" / "pmg",
                                   cache_dir=cache_dir, ground=not a.no_ground, structured=not a.free_text,
                                   captioner=captioner)

        ext = extractor(None)
        res, cold_s = run(ext, users, batched=False)
        if a.no_batched:
            return ext, res, cold_s, res, float("nan")
        res_b, batch_s = run(extractor(tmp), users, batched=True)
    return ext, res, cold_s, res_b, batch_s


def junk_keywords(users, res) -> tuple[int, list[str]]:
    """(number of keywords, the junk ones)."""
    prompt_words = load_prompt_set(users[0].scenario.value).words()
    n_kw, bad = 0, []
    for u, r in zip(users, res):
        # the image captions are behaviours too; the label "image:" that introduces them is not
        text = user_text(u) + " " + " ".join(map(without_labels, r.behaviour_text))
        for k in r.preference + r.target:
            n_kw += 1
            if junk(k, text, prompt_words):
                bad.append(k)
    return n_kw, bad


def report_emoticons(ids, res, truth, embed) -> None:
    theme, mood, misses = [], [], []
    for uid, r in zip(ids, res):
        t = truth[uid]
        words = {w for k in r.preference for w in content_words(k)}
        hit = bool(words & THEME_WORDS[t["theme"]])
        if not hit and r.preference:
            hit = float((embed(r.preference) @ embed([t["theme"]]).T).max()) >= 0.6
        theme.append(float(hit))
        if not hit:
            misses.append(f"{uid} ({t['theme']}): {r.preference}")
        mood.append(float(any(k in MOOD_WORDS[t["mood"]] or any(w in MOOD_WORDS[t["mood"]] for w in k.split()) for k in r.target)))
    print(f"  theme recovered in the top 10       {bootstrap_ci(theme)[0]:.3f}")
    print(f"  target names the mood                {bootstrap_ci(mood)[0]:.3f}")
    for m in misses[:8]:
        print(f"    theme missed: {m}")


def report_open(ids, res, truth, embed) -> None:
    from pmg.evaluation.benchmarks.open_themes import theme_named

    theme, mood, misses = [], [], []
    for uid, r in zip(ids, res):
        t = truth[uid]
        hit = theme_named(r.preference, t["theme_names"], t["theme"], embed)
        theme.append(float(hit))
        if not hit:
            misses.append(f"{uid} ({t['theme']}): {r.preference}")
        mood.append(float(any(k in MOOD_WORDS[t["mood"]] or any(w in MOOD_WORDS[t["mood"]] for w in k.split()) for k in r.target)))
    lo_hi = bootstrap_ci(theme)
    print(f"  theme named in the top 10            {lo_hi[0]:.3f} [{lo_hi[1]:.3f}, {lo_hi[2]:.3f}]")
    print(f"  target names the mood                {bootstrap_ci(mood)[0]:.3f}")
    for m in misses[:12]:
        print(f"    theme missed: {m}")


def report_movies(ids, res, truth) -> None:
    from pmg.evaluation.benchmarks.movies import keyword_coverage

    cov = [keyword_coverage(r.preference, truth[uid]["history_genres"]) for uid, r in zip(ids, res)]
    tcov = [keyword_coverage(r.target, [g for g in truth[uid]["target_genres"] if g != "(no genres listed)"]) for uid, r in zip(ids, res)]
    print(f"  history genre coverage               {bootstrap_ci(cov)[0]:.3f}")
    print(f"  target genre coverage                {bootstrap_ci(tcov)[0]:.3f}")


def main() -> None:
    a = parse_args()
    import torch

    from pmg.keywords.ground import SentenceEmbedder

    torch.set_num_threads(a.threads)
    embed = SentenceEmbedder()
    sets = load_sets(a)
    print(f"config: llm {a.llm}, backend {a.backend}, {'free text' if a.free_text else 'JSON-constrained where supported'}, "
          f"{'no grounding' if a.no_ground else 'grounded'}, {a.threads} threads")
    for name, (users, truth, ids) in sets.items():
        ext, res, cold_s, res_b, batch_s = timed_keywords(a, users)
        n_kw, bad = junk_keywords(users, res)
        same = sum(r.preference == b.preference and r.target == b.target for r, b in zip(res, res_b))
        print(f"\n{name} ({a.split}, {len(users)} users) — backend {ext.llm.name}")
        if name == "emoticons":
            report_emoticons(ids, res, truth, embed)
        elif name == "open":
            report_open(ids, res, truth, embed)
        else:
            report_movies(ids, res, truth)
        print(f"  junk rate                            {len(bad) / max(1, n_kw):.3f}  ({len(bad)} of {n_kw}; e.g. {bad[:6]})")
        print(f"  s/user cold, one at a time           {cold_s / len(users):.2f}")
        print(f"  s/user batched                       {batch_s / len(users):.2f}  ({cold_s / batch_s:.2f}x; "
              f"{same}/{len(users)} users with the same keywords as one at a time)")
        print(f"  example: {users[0].user_id}: {res[0].preference} | {res[0].target}")


if __name__ == "__main__":
    main()
