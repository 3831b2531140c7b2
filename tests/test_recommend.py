"""Table 4's recommender: the protocols' splits, the clothing catalogue, LightGCN with features, metrics,
and the whole table on a tiny benchmark with tiny models."""

import csv
import json
from pathlib import Path

import pytest
import torch
from helpers import ColourScorer, tiny_pmg

from pmg.evaluation.benchmarks.emoticons import build_emoticon_benchmark
from pmg.evaluation.protocols import (
    cold_item_split, garment_product, generation_inputs, heldout_position, load_catalogue, make_split,
    sparse_user_split, warm_split,
)
from pmg.evaluation.recommend import (
    Interactions, RecConfig, alexnet_features, averaged_users, interactions, rank_metrics, run_table4, train_and_evaluate,
)

# 10 users over items 0..9, in history order (user 4 re-uses everything: never evaluated)
HISTORIES = [[0, 1, 2, 3], [1, 2, 4, 2], [5, 6, 7, 8, 9], [0, 5, 9], [3, 3], [2, 8, 1, 6], [7, 4, 0], [9, 8, 7, 6, 5],
             [1, 3, 5, 7], [2, 4, 6, 8, 0]]


def test_heldout_is_the_latest_item_used_once():
    assert heldout_position([1, 2, 3, 2]) == 2  # 2 is re-used; 3 is the latest used once
    assert heldout_position([5, 5]) is None
    assert heldout_position([4]) == 0


def test_warm_holds_out_one_item_and_shows_the_rest():
    s = warm_split(HISTORIES)
    assert s.test[1] == [4] and s.train[1] == [1, 2] and s.visible[1] == [0, 1, 3]
    assert 4 not in s.test and s.train[4] == [3] and s.candidates is None
    for u, (item,) in s.test.items():
        assert item not in s.train[u] and item not in s.seen_items(u, HISTORIES[u])


def test_cold_items_have_no_training_edges_and_are_the_only_candidates():
    s = cold_item_split(HISTORIES, share=0.3, seed=0)
    cold = set(s.candidates)
    assert len(cold) == 3  # 30% of 10 items
    assert not cold & {i for t in s.train for i in t}
    warm = warm_split(HISTORIES)
    assert s.test == {u: t for u, t in warm.test.items() if t[0] in cold} and s.test
    for u, (item,) in s.test.items():  # the user's features never see the item they are tested on
        assert item not in s.seen_items(u, HISTORIES[u])
    assert s.visible == warm.visible  # so the warm protocol's user images serve
    assert cold_item_split(HISTORIES, share=0.3, seed=0) == s != cold_item_split(HISTORIES, share=0.3, seed=1)


def test_sparse_users_keep_their_first_one_to_three_items():
    s = sparse_user_split(HISTORIES, share=0.5, seed=0)
    warm = warm_split(HISTORIES)
    assert len(s.test) == round(0.5 * len(warm.test)) == 4
    for u in range(len(HISTORIES)):
        if u in s.test:
            assert 1 <= len(s.train[u]) <= 3 and s.test[u] == warm.test[u]
            assert s.visible[u] == list(range(len(s.visible[u])))  # these histories' first items are distinct
            assert s.train[u] == sorted(HISTORIES[u][: len(s.train[u])]) and s.test[u][0] not in s.train[u]
        else:
            assert s.train[u] == warm.train[u] and s.visible[u] == warm.visible[u]
    assert make_split("sparse-user", HISTORIES) == sparse_user_split(HISTORIES)


def test_sparse_users_keep_distinct_items():
    s = sparse_user_split([[1, 1, 2, 3, 4, 5], [1, 2, 6]], share=1.0, keep=(3, 3))
    assert s.train[0] == [1, 2, 3] and s.visible[0] == [0, 2, 3] and s.test[0] == [5]


def test_unknown_protocol_is_refused():
    from pmg.errors import ConfigError

    with pytest.raises(ConfigError, match="cold-item"):
        make_split("cold", HISTORIES)


def test_garment_titles_name_their_product():
    assert garment_product("Casual red plaid tee") == "t-shirt/red/checked"
    assert garment_product("New season yellow dotted pants") == "trousers/yellow/dotted"
    assert garment_product("Pink polka dots sandal") == "sandal/pink/dotted"
    assert garment_product("Slim fit navy shirt") == "shirt/navy/plain"  # 'shirt', not 't-shirt'
    assert garment_product("White ankle boot") == "ankle boot/white/plain"
    assert garment_product("Grey chevron boots") == "ankle boot/grey/zigzag"
    with pytest.raises(ValueError, match="colour"):
        garment_product("Striped tee")


def test_clothing_catalogue_is_products_shared_by_shoppers(tmp_path):
    from pmg.evaluation.benchmarks.clothing import build_clothing_benchmark
    from pmg.evaluation.benchmarks.garments import FASHION_MNIST

    if not FASHION_MNIST.is_dir():
        pytest.skip("needs dataset-fashion-mnist")
    build_clothing_benchmark(tmp_path / "b", n_users=40, seed=0)
    cat = load_catalogue(tmp_path / "b", limit=30)
    assert len(cat.users) == 30 and cat.users[0] == "s0000"
    assert len(cat.items) < sum(map(len, cat.histories))  # products repeat across shoppers
    for u, f in enumerate(cat.files):
        hist = json.loads(f.read_text())["history"]
        assert [cat.items[i] for i in cat.histories[u]] == [garment_product(it["title"]) for it in hist]
    # a product's picture is its first rendering: the first shopper (by id) who has it
    first = {}
    for u, h in enumerate(cat.histories):
        for j, i in enumerate(h):
            first.setdefault(i, (u, j))
    for i, (u, j) in first.items():
        assert cat.item_images[i].name == f"{cat.users[u]}_h{j}.png"


def test_generation_inputs_hold_only_what_features_may_see(art, tmp_path):
    bench = tmp_path / "bench"
    build_emoticon_benchmark(art, bench, n_users=40, seed=0)
    cat = load_catalogue(bench)
    s = make_split("sparse-user", cat.histories)
    users = tmp_path / "users"
    written = generation_inputs(cat, dict(enumerate(s.visible)), users)
    assert written == cat.users
    for u in s.test:
        gen = json.loads((users / f"{cat.users[u]}.json").read_text())
        assert 1 <= len(gen["history"]) <= 3
        shown = {cat.item_images.index(Path(it["image"])) for it in gen["history"]}
        assert shown == set(s.train[u]) and s.test[u][0] not in shown


def _two_clusters(cold: tuple[int, int] | None = None):
    """Users 0..19 like items 0..9, users 20..39 items 10..19; each trains on 4 items of their cluster and
    holds out another. With ``cold`` (one item per cluster): nobody trains on those, and they are held out."""
    g = torch.Generator().manual_seed(0)
    train, test = [], {}
    for u in range(40):
        lo = 0 if u < 20 else 10
        pool = [i for i in range(lo, lo + 10) if not cold or i not in cold]
        perm = [pool[j] for j in torch.randperm(len(pool), generator=g).tolist()]
        test[u] = [cold[u >= 20] if cold else perm[4]]
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


def test_ranking_masks_what_users_have_and_keeps_to_candidates():
    # items scored 5, 4, 3, 2, 1 for every user; user 0 has item 0 and is tested on items 1 and 3
    users, items = torch.ones(2, 1), torch.tensor([[5.0], [4.0], [3.0], [2.0], [1.0]])
    data = Interactions(["a", "b"], list("vwxyz"), [], [[0], []], {0: [1, 3], 1: [4]})
    assert rank_metrics(users, items, data, k=2) == {"recall": pytest.approx(0.25), "ndcg": pytest.approx(0.5 / 1.6309297)}
    data.candidates = [3, 4]  # only the two cold items: both users find their cold item in the top 2
    assert rank_metrics(users, items, data, k=2)["recall"] == pytest.approx(0.75)  # user 0: 1 of 2; user 1: 1 of 1
    assert rank_metrics(users, items, data, k=1)["recall"] == pytest.approx(0.25)  # both get item 3: 1 of 2, 0 of 1
    data.seen = [[], [3]]  # what the user's features saw is theirs: not recommended again
    assert rank_metrics(users, items, data, k=1)["recall"] == pytest.approx(0.75)  # user 1 now gets item 4


def test_averaged_user_is_the_mean_of_seen_items():
    feats = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    assert averaged_users(feats, [[0, 1], [], [2]]).tolist() == [[0.5, 0.5], [0.0, 0.0], [1.0, 1.0]]


def test_alexnet_features_tell_colours_apart(tmp_path):
    from PIL import Image

    paths = []
    for name, colour in (("r1", (220, 30, 30)), ("r2", (200, 40, 40)), ("b", (30, 30, 220))):
        Image.new("RGB", (64, 64), colour).save(tmp_path / f"{name}.png")
        paths.append(tmp_path / f"{name}.png")
    f = alexnet_features(paths)
    assert f.shape == (3, 1152) and torch.allclose(f.norm(dim=1), torch.ones(3))
    assert f[0] @ f[1] > f[0] @ f[2]


def test_table4_comes_out_with_four_rows_per_protocol(art, tmp_path):
    bench = tmp_path / "bench"
    build_emoticon_benchmark(art, bench, n_users=60, seed=0)
    cat = load_catalogue(bench)
    out = tmp_path / "results"
    kw = dict(steps=2, seeds=2, cfg=RecConfig(dim=8, epochs=20), progress=False, models={"tiny": 0}, checks=())
    text = run_table4(bench, out, tiny_pmg, ColourScorer(), protocol="sparse-user", **kw)
    rows = list(csv.DictReader((out / "table4-sparse-user.csv").open()))
    assert [r["row"] for r in rows] == ["No-image", "Item-only", "Averaged-user", "Generated-user"]
    assert [r["user"] for r in rows] == ["-", "-", "average", "generated"]
    for r in rows:
        assert 0 <= float(r["recall10_low"]) <= float(r["recall10_mean"]) <= float(r["recall10_high"]) <= 1
    sparse = make_split("sparse-user", cat.histories).test
    assert {r["users_evaluated"] for r in rows} == {str(len(sparse))}
    assert "Generated-user" in text and (out / "table4-sparse-user.md").read_text() == text
    # the sparse users' images come from their 1-3 items; everybody's warm image is made too
    assert json.loads((out / "generated" / "sparse-user" / "summary.json").read_text())["generated"] == len(sparse)
    warm = json.loads((out / "generated" / "warm" / "summary.json").read_text())
    assert warm["generated"] == len(cat.users) and warm["config"]["weights"] == [[1.0, 0.0]]
    # cold-item needs no new image: every one is reused
    run_table4(bench, out, tiny_pmg, ColourScorer(), protocol="cold-item", **kw)
    assert json.loads((out / "generated" / "warm" / "summary.json").read_text())["skipped_already_done"] == len(cat.users)
    assert not (out / "generated" / "cold-item").exists()
    gathered = (out / "table4.md").read_text()
    assert gathered.index("Protocol: cold-item") < gathered.index("Protocol: sparse-user")
    assert len(list(csv.DictReader((out / "table4.csv").open()))) == 8


def test_a_benchmark_without_shared_items_is_refused(tmp_path):
    from pmg.errors import InputError

    for u in range(3):
        (tmp_path / "users").mkdir(exist_ok=True)
        (tmp_path / "users" / f"u{u}.json").write_text(json.dumps(
            {"user_id": f"u{u}", "history": [{"title": "x", "image": f"../images/u{u}_h{j}.png"} for j in range(3)]}))
    with pytest.raises(InputError, match="no item image is shared"):
        load_catalogue(tmp_path)
