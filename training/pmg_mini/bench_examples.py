"""The keyword stage's own outputs for the emoticon benchmark's **train** users, as generator training
examples: what the LLM really writes (noisy preference words, its target words for the message)
paired with the image PMG should make of them.

    python -m training.pmg_mini.bench_examples --bench data/benchmarks/emoticons --out data/pmg-mini/bench_train.jsonl

One JSON line per user: ``target`` and ``preference`` keywords, ``truth`` (hexcode, style) of the
ground-truth emoji (the message's mood in the user's theme and style) and ``history`` (hexcode, style)
of the items the user used. ``train_generator --bench-examples FILE`` mixes them in (``p_bench``): the
truth at a composing ratio, a history item at 4:0. Only the train split is read; validation and
test users are never trained on.

The clothing benchmark (``--bench data/benchmarks/clothing-1000``) gives ``truth_image`` (the target
type in the shopper's colour and pattern) and ``history_images`` (paths) instead; ``--exclude BENCH``
drops users that another benchmark built from the same seed holds for validation or test (the 300- and
1,000-shopper clothing benchmarks share their first users).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def emoji_key(image: str) -> tuple[str, str]:
    """'../images/1F94A_twemoji.png' -> ('1F94A', 'twemoji')."""
    hexcode, style = Path(image).stem.rsplit("_", 1)
    return hexcode, style


def held_out_ids(benches: list[Path]) -> set[str]:
    """User ids in the validation or test split of any of these benchmarks."""
    ids: set[str] = set()
    for b in benches:
        split = json.loads((b / "split.json").read_text())
        ids |= set(split["val"]) | set(split["test"])
    return ids


def example_row(uid: str, user, kw, t: dict, bench: Path) -> dict:
    """One user's line: the keywords and the images (emoji keys or garment image paths) they should give."""
    row = {"user_id": uid, "target": kw.target, "preference": kw.preference}
    if user.scenario == "clothing":
        return {**row, "truth_image": str((bench / t["target_image"]).resolve()),
                "history_images": [str(Path(h.image).resolve()) for h in user.recent().history]}
    return {**row, "truth": [t["target_hexcode"], t["style"]],
            "history": [list(emoji_key(str(h.image))) for h in user.recent().history]}


def build(bench: Path, out: Path, llm: str = "smollm2", threads: int = 2, cache_dir: Path | None = None,
          exclude: list[Path] | None = None, max_users: int = 0) -> int:
    from pmg.api import default_cache_dir
    from pmg.behaviours.schema import load_user
    from pmg.keywords.extract import build_extractor

    skip = held_out_ids(exclude or [])
    ids = [u for u in json.loads((bench / "split.json").read_text())["train"] if u not in skip]
    ids = ids[:max_users] if max_users > 0 else ids
    truth = json.loads((bench / "ground_truth.json").read_text())
    users = [load_user(bench / "users" / f"{uid}.json") for uid in ids]
    cache = cache_dir or default_cache_dir()
    ext = build_extractor(llm, threads=threads, cache_dir=cache, model_cache_dir=cache)
    results = ext.batch(users, progress=True)
    rows = [example_row(uid, user, kw, truth[uid], bench) for uid, user, kw in zip(ids, users, results)]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return len(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", type=Path, default=Path("data/benchmarks/emoticons"))
    ap.add_argument("--out", type=Path, default=Path("data/pmg-mini/bench_train.jsonl"))
    ap.add_argument("--llm", default="smollm2")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--exclude", type=Path, action="append", default=[],
                    help="a benchmark whose val/test users must not be trained on (repeatable)")
    ap.add_argument("--max-users", type=int, default=0, help="the first N train users only (0: all)")
    a = ap.parse_args()
    n = build(a.bench, a.out, a.llm, a.threads, exclude=a.exclude, max_users=a.max_users)
    print(f"wrote {n} users to {a.out}")


if __name__ == "__main__":
    main()
