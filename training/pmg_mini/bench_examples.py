"""The keyword stage's own outputs for the emoticon benchmark's **train** users, as generator training
examples: what the LLM really writes (noisy preference words, its target words for the message)
paired with the image PMG should make of them.

    python -m training.pmg_mini.bench_examples --bench data/benchmarks/emoticons --out data/pmg-mini/bench_train.jsonl

One JSON line per user: ``target`` and ``preference`` keywords, ``truth`` (hexcode, style) of the
ground-truth emoji (the message's mood in the user's theme and style) and ``history`` (hexcode, style)
of the items the user used. ``train_generator --bench-examples FILE`` mixes them in (``p_bench``): the
truth at a composing ratio, a history item at 4:0. Only the train split is read; validation and
test users are never trained on.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def emoji_key(image: str) -> tuple[str, str]:
    """'../images/1F94A_twemoji.png' -> ('1F94A', 'twemoji')."""
    hexcode, style = Path(image).stem.rsplit("_", 1)
    return hexcode, style


def build(bench: Path, out: Path, llm: str = "smollm2", threads: int = 2, cache_dir: Path | None = None) -> int:
    from pmg.api import default_cache_dir
    from pmg.behaviours.schema import load_user
    from pmg.keywords.extract import build_extractor

    ids = json.loads((bench / "split.json").read_text())["train"]
    truth = json.loads((bench / "ground_truth.json").read_text())
    users = [load_user(bench / "users" / f"{uid}.json") for uid in ids]
    cache = cache_dir or default_cache_dir()
    ext = build_extractor(llm, threads=threads, cache_dir=cache, model_cache_dir=cache)
    results = ext.batch(users, progress=True)
    rows = []
    for uid, user, kw in zip(ids, users, results):
        t = truth[uid]
        rows.append({"user_id": uid, "target": kw.target, "preference": kw.preference,
                     "truth": [t["target_hexcode"], t["style"]],
                     "history": [list(emoji_key(str(h.image))) for h in user.recent().history]})
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return len(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", type=Path, default=Path("data/benchmarks/emoticons"))
    ap.add_argument("--out", type=Path, default=Path("data/pmg-mini/bench_train.jsonl"))
    ap.add_argument("--llm", default="smollm2")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    print(f"wrote {build(a.bench, a.out, a.llm, a.threads)} users to {a.out}")


if __name__ == "__main__":
    main()
