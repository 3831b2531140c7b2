"""Table 4's recommender: the leave-last-out split, LightGCN with features, metrics, and the whole table
on a tiny benchmark with tiny models."""

import csv
import json

import torch
from helpers import ColourScorer, tiny_pmg

from pmg.evaluation.benchmarks.emoticons import build_emoticon_benchmark
from pmg.evaluation.recommend import (
    Interactions, RecConfig, _heldout_position, heldout_users, leave_last_out, run_table4, train_and_evaluate,
)


def test_heldout_is_the_latest_item_used_once():
    assert _heldout_position([1, 2, 3, 2]) == 2  # 2 is re-used; 3 is the latest used once
    assert _heldout_position([5, 5]) is None
    assert _heldout_position([4]) == 0


def test_split_never_leaks_the_heldout_item(art, tmp_path):
    bench = tmp_path / "bench"
    build_emoticon_benchmark(art, bench, n_users=40, seed=0)
    data = leave_last_out(bench)
    with_images = [f for f in (bench / "users").glob("*.json") if any(it.get("image") for it in json.loads(f.read_text())["history"])]
    assert len(data.users) == len(with_images) >= 10 and len(data.test) >= 5
    for u, item in data.test.items():
        assert item not in data.train[u]
    users = heldout_users(bench, data, tmp_path / "users")
    for u, pos in data.heldout_position.items():
        gen_user = json.loads((users / f"{data.users[u]}.json").read_text())
        orig = json.loads((bench / "users" / f"{data.users[u]}.json").read_text())
        assert len(gen_user["history"]) == len(orig["history"]) - 1
        assert data.item_images[data.test[u]].name not in {p["image"].rsplit("/", 1)[-1] for p in gen_user["history"]}


def _two_clusters(cold: tuple[int, int] | None = None):
    """Users 0..19 like items 0..9, users 20..39 items 10..19; each trains on 4 items of their cluster and
    holds out another. With ``cold`` (one item per cluster): nobody trains on those, and they are held out."""
    g = torch.Generator().manual_seed(0)
    train, test = [], {}
    for u in range(40):
        lo = 0 if u < 20 else 10
        pool = [i for i in range(lo, lo + 10) if not cold or i not in cold]
        perm = [pool[j] for j in torch.randperm(len(pool), generator=g).tolist()]
        test[u] = cold[u >= 20] if cold else perm[4]
        train.append(sorted(perm[:4]))
    return Interactions([f"u{u}" for u in range(40)], [f"i{i}" for i in range(20)], [], train, test)


def test_lightgcn_learns_clusters():
    trained = train_and_evaluate(_two_clusters(), None, None, seed=0, cfg=RecConfig(dim=16, epochs=150, k=5))
    # 5 slots, 6 unseen items of the user's own cluster among 16: chance is 5/16, a learnt cluster 5/6
    assert trained["recall"] > 0.6 and 0 < trained["ndcg"] <= trained["recall"]


def test_item_features_place_items_nobody_has_yet():
    # each user has 5 unseen trained items in their cluster, then the two cold items: with k = 6 the
    # held-out cold item is found only if it ranks above the other cluster's cold item
    data = _two_clusters(cold=(3, 13))
    feats = torch.tensor([[1.0, 0.0] if i < 10 else [0.0, 1.0] for i in range(20)])
    cfg = RecConfig(dim=16, epochs=150, k=6)
    without = sum(train_and_evaluate(data, None, None, seed=s, cfg=cfg)["recall"] for s in range(3)) / 3
    with_features = sum(train_and_evaluate(data, feats, None, seed=s, cfg=cfg)["recall"] for s in range(3)) / 3
    assert with_features >= 0.95 and with_features > without + 0.15, (with_features, without)


def test_table4_comes_out_with_four_rows(art, tmp_path):
    bench = tmp_path / "bench"
    build_emoticon_benchmark(art, bench, n_users=60, seed=0)
    n = len(leave_last_out(bench).users)
    out = tmp_path / "results"
    text = run_table4(bench, out, tiny_pmg, ColourScorer(), steps=2, seeds=2, cfg=RecConfig(dim=8, epochs=20),
                      progress=False, models={"tiny": 0})
    rows = list(csv.DictReader((out / "table4.csv").open()))
    assert [r["row"] for r in rows] == ["No-image", "Item-only", "Averaged-user", "Generated-user"]
    assert [r["user"] for r in rows] == ["-", "-", "average", "generated"]
    for r in rows:
        assert 0 <= float(r["recall10_low"]) <= float(r["recall10_mean"]) <= float(r["recall10_high"]) <= 1
    assert "Generated-user" in text and (out / "table4.md").read_text() == text
    summary = json.loads((out / "generated" / "summary.json").read_text())
    assert summary["generated"] == n >= 10 and summary["config"]["weights"] == [[1.0, 0.0]]
    # run again: the generated images are reused, not redone
    run_table4(bench, out, tiny_pmg, ColourScorer(), steps=2, seeds=2, cfg=RecConfig(dim=8, epochs=20),
               progress=False, models={"tiny": 0})
    assert json.loads((out / "generated" / "summary.json").read_text())["skipped_already_done"] == n


def test_a_benchmark_without_shared_items_is_refused(tmp_path):
    import pytest

    from pmg.errors import InputError

    for u in range(3):
        (tmp_path / "users").mkdir(exist_ok=True)
        (tmp_path / "users" / f"u{u}.json").write_text(json.dumps(
            {"user_id": f"u{u}", "history": [{"title": "x", "image": f"../images/u{u}_h{j}.png"} for j in range(3)]}))
    with pytest.raises(InputError, match="no item image is shared"):
        leave_last_out(tmp_path)
