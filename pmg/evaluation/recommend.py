"""Table 4: do PMG's generated user images help a recommender?

The paper feeds MMGCN image features of items and users. Here the recommender is **LightGCN with
multimodal features**, built on torch-geometric's ``LGConv``: each node starts from an ID embedding
plus a linear map of its image feature (when the row has one), LightGCN propagation averages the
layers, and BPR trains it. MMGCN's per-modality graphs collapse to a single graph when the only modality
is the image (the ID embedding is LightGCN's own), and LightGCN is the stronger, maintained baseline of
the two, so the comparison the table makes (which image features, not which graph model) is kept.

Protocol, leave-last-out on every user of the benchmark: the held-out item is the most recent item the
user used exactly once (a re-used emoji would be in training too); every other history item is a
training edge. Users with no such item are in the graph but not evaluated. The four rows differ only in
the image features (from the scorer's image tower):

    No-image        ID embeddings only
    Item-only       + item image features
    Averaged-user   + user feature = mean feature of the user's training items
    Generated-user  + user feature = the user's PMG image generated under the preference condition only
                      (w_p:w_t = 1:0, no target, as in the paper), from the history without the held-out item

Recall@10 and NDCG@10 (torch-geometric's ``LinkPredRecall`` / ``LinkPredNDCG``, training items masked),
mean and 95% t-interval over 5 seeds.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

__all__ = ["Interactions", "leave_last_out", "FeatureLightGCN", "RecConfig", "train_and_evaluate", "ROWS",
           "table4_rows", "write_table4", "heldout_users"]

ROWS = ("No-image", "Item-only", "Averaged-user", "Generated-user")


@dataclass
class Interactions:
    users: list[str]  # user ids
    items: list[str]  # item keys (image file stems)
    item_images: list[Path]
    train: list[list[int]]  # per user: training item indices (distinct)
    test: dict[int, int]  # user index -> held-out item index
    heldout_position: dict[int, int] = field(default_factory=dict)  # user index -> position in the history

    @property
    def edge_index(self) -> torch.Tensor:
        """The bipartite graph, both directions; items are numbered after users."""
        u = [ui for ui, its in enumerate(self.train) for _ in its]
        i = [len(self.users) + it for its in self.train for it in its]
        return torch.tensor([u + i, i + u], dtype=torch.long)


def _heldout_position(items: list[str]) -> int | None:
    """The most recent position whose item occurs exactly once in the history."""
    for pos in range(len(items) - 1, -1, -1):
        if items.count(items[pos]) == 1:
            return pos
    return None


def leave_last_out(bench: Path) -> Interactions:
    """Every user of a benchmark folder (users/*.json with item images) as graph + held-out items."""
    files = sorted((bench / "users").glob("*.json"))
    histories, users = [], []
    for f in files:
        data = json.loads(f.read_text(encoding="utf-8"))
        imgs = [(f.parent / it["image"]).resolve() for it in data["history"] if it.get("image")]
        if not imgs:
            continue
        users.append(data.get("user_id", f.stem))
        histories.append(imgs)
    if not users:
        from pmg.errors import InputError

        raise InputError(f"{bench}: no users with item images (Table 4 needs a benchmark with item images)")
    paths = sorted({p for h in histories for p in h})
    users_of = {}
    for h in histories:
        for p in set(h):
            users_of[p] = users_of.get(p, 0) + 1
    if len(histories) > 1 and max(users_of.values()) < 2:
        from pmg.errors import InputError

        raise InputError(f"{bench}: no item image is shared by two users (each history item is its own picture), "
                         "so a recommender has nothing to learn; Table 4 needs a catalogue, as the emoticon benchmark has")
    index = {p: i for i, p in enumerate(paths)}
    train, test, where = [], {}, {}
    for ui, h in enumerate(histories):
        keys = [index[p] for p in h]
        pos = _heldout_position(keys)
        if pos is not None:
            test[ui], where[ui] = keys[pos], pos
        train.append(sorted({k for j, k in enumerate(keys) if j != pos}))
    return Interactions(users, [p.stem for p in paths], paths, train, test, where)


def heldout_users(bench: Path, data: Interactions, out: Path) -> Path:
    """The benchmark's users without their held-out item (image paths made absolute), for generation."""
    out.mkdir(parents=True, exist_ok=True)
    by_id = {u: i for i, u in enumerate(data.users)}
    for f in sorted((bench / "users").glob("*.json")):
        user = json.loads(f.read_text(encoding="utf-8"))
        ui = by_id.get(user.get("user_id", f.stem))
        if ui is None:
            continue
        hist = [dict(it, image=str((f.parent / it["image"]).resolve())) if it.get("image") else it for it in user["history"]]
        if ui in data.heldout_position:
            del hist[data.heldout_position[ui]]
        (out / f.name).write_text(json.dumps(dict(user, history=hist), ensure_ascii=False), encoding="utf-8")
    return out


class FeatureLightGCN(nn.Module):
    """LightGCN (``LGConv`` layers, layer mean) whose node inputs are ID embeddings plus linearly mapped
    image features of items and/or users."""

    def __init__(self, n_users: int, n_items: int, dim: int = 64, layers: int = 2,
                 item_features: torch.Tensor | None = None, user_features: torch.Tensor | None = None):
        super().__init__()
        from torch_geometric.nn import LGConv

        self.n_users, self.n_items = n_users, n_items
        self.embedding = nn.Embedding(n_users + n_items, dim)
        nn.init.normal_(self.embedding.weight, std=0.1)
        self.register_buffer("item_features", item_features)
        self.register_buffer("user_features", user_features)
        self.item_proj = None if item_features is None else nn.Linear(item_features.shape[1], dim, bias=False)
        self.user_proj = None if user_features is None else nn.Linear(user_features.shape[1], dim, bias=False)
        self.convs = nn.ModuleList(LGConv() for _ in range(layers))

    def forward(self, edge_index: torch.Tensor) -> torch.Tensor:
        x = self.embedding.weight
        extra = []
        extra.append(self.user_proj(self.user_features) if self.user_proj is not None else x.new_zeros(self.n_users, x.shape[1]))
        extra.append(self.item_proj(self.item_features) if self.item_proj is not None else x.new_zeros(self.n_items, x.shape[1]))
        x = x + torch.cat(extra)
        out = [x]
        for conv in self.convs:
            x = conv(x, edge_index)
            out.append(x)
        return torch.stack(out).mean(0)


@dataclass(frozen=True)
class RecConfig:
    dim: int = 64
    layers: int = 2
    epochs: int = 200
    lr: float = 0.01
    weight_decay: float = 1e-4  # on the batch's embeddings (LightGCN's L2 term)
    k: int = 10


def train_and_evaluate(data: Interactions, item_features: torch.Tensor | None, user_features: torch.Tensor | None,
                       seed: int, cfg: RecConfig = RecConfig()) -> dict[str, float]:
    """Train with BPR (one negative per training edge per epoch, uniform over items with training
    interactions), then Recall@k / NDCG@k over all items the user has not got."""
    from torch_geometric.metrics import LinkPredNDCG, LinkPredRecall

    torch.manual_seed(seed)
    n_u, n_i = len(data.users), len(data.items)
    model = FeatureLightGCN(n_u, n_i, cfg.dim, cfg.layers, item_features, user_features)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    edge_index = data.edge_index
    users = torch.tensor([u for u, its in enumerate(data.train) for _ in its])
    pos = torch.tensor([i for its in data.train for i in its])
    seen = torch.zeros(n_u, n_i, dtype=torch.bool)
    seen[users, pos] = True
    gen = torch.Generator().manual_seed(seed)
    # negatives among items that have training interactions: an item nobody has yet is never pushed
    # down as a negative, so only its image feature places it (what the item-feature rows measure)
    pool = pos.unique()
    model.train()
    for _ in range(cfg.epochs):
        neg = pool[torch.randint(0, len(pool), (len(users),), generator=gen)]
        x = model(edge_index)
        xu, xp, xn = x[users], x[n_u + pos], x[n_u + neg]
        loss = -torch.nn.functional.logsigmoid((xu * xp).sum(-1) - (xu * xn).sum(-1)).mean()
        reg = model.embedding.weight[torch.cat([users, n_u + pos, n_u + neg])].pow(2).sum(-1).mean()
        opt.zero_grad()
        (loss + cfg.weight_decay * reg).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        x = model(edge_index)
        test_users = torch.tensor(sorted(data.test))
        scores = x[test_users] @ x[n_u:].T
        scores[seen[test_users]] = -math.inf  # items the user already has are not recommended
        top = scores.topk(cfg.k, dim=1).indices
    truth = torch.stack([torch.arange(len(test_users)), torch.tensor([data.test[int(u)] for u in test_users])])
    recall, ndcg = LinkPredRecall(cfg.k), LinkPredNDCG(cfg.k)
    recall.update(top, truth)
    ndcg.update(top, truth)
    return {"recall": float(recall.compute()), "ndcg": float(ndcg.compute())}


# Student's t, 97.5% quantile by degrees of freedom (a few seeds: no scipy needed for five numbers)
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
         15: 2.131, 20: 2.086, 30: 2.042}


def _t975(df: int) -> float:
    return _T975.get(df) or _T975[max(k for k in _T975 if k <= df)] if df <= 30 else 1.96


def _t_interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and 95% t-interval over seeds."""
    v = np.asarray(values, dtype=float)
    if v.size < 2:
        return float(v.mean()), float("nan"), float("nan")
    half = _t975(v.size - 1) * v.std(ddof=1) / math.sqrt(v.size)
    m = float(v.mean())
    return m, max(0.0, m - half), min(1.0, m + half)  # Recall and NDCG lie in [0, 1]


def table4_rows(data: Interactions, item_features: torch.Tensor, generated_features: torch.Tensor | None,
                seeds: int = 5, cfg: RecConfig = RecConfig()) -> list[dict]:
    """The paper's four rows (the last only when generated features are given), each over ``seeds`` seeds."""
    avg = torch.stack([item_features[its].mean(0) if its else item_features.new_zeros(item_features.shape[1])
                       for its in data.train])
    settings = {"No-image": (None, None), "Item-only": (item_features, None), "Averaged-user": (item_features, avg)}
    if generated_features is not None:
        settings["Generated-user"] = (item_features, generated_features)
    rows = []
    for name, (fi, fu) in settings.items():
        runs = [train_and_evaluate(data, fi, fu, seed, cfg) for seed in range(seeds)]
        rec, ndcg = _t_interval([r["recall"] for r in runs]), _t_interval([r["ndcg"] for r in runs])
        user = {"Averaged-user": "average", "Generated-user": "generated"}.get(name, "-")
        rows.append({"row": name, "item": fi is not None, "user": user, "recall@10": rec, "ndcg@10": ndcg, "runs": runs})
    return rows


def write_table4(rows: list[dict], out: Path, note: str = "") -> str:
    """results/<benchmark>/table4.md and .csv."""
    import csv

    out.mkdir(parents=True, exist_ok=True)
    lines = ["| | Item | User | Recall@10 (95% CI) | NDCG@10 (95% CI) |", "|---|---|---|---|---|"]
    for r in rows:
        rec, nd = r["recall@10"], r["ndcg@10"]
        lines.append(f"| {r['row']} | {'yes' if r['item'] else 'no'} | {r['user']} | "
                     f"{100 * rec[0]:.2f}% [{100 * rec[1]:.2f}, {100 * rec[2]:.2f}] | {nd[0]:.4f} [{nd[1]:.4f}, {nd[2]:.4f}] |")
    text = "\n".join(lines) + ("\n\n" + note if note else "") + "\n"
    (out / "table4.md").write_text(text, encoding="utf-8")
    with (out / "table4.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["row", "item", "user", "recall10_mean", "recall10_low", "recall10_high", "ndcg10_mean", "ndcg10_low",
                    "ndcg10_high", "seeds"])
        for r in rows:
            w.writerow([r["row"], r["item"], r["user"], *[f"{v:.6f}" for v in r["recall@10"]],
                        *[f"{v:.6f}" for v in r["ndcg@10"]], len(r["runs"])])
    return text


def generated_features(scorer, generated: Path, data: Interactions) -> torch.Tensor:
    """Image features of each user's generated image (``pmg batch`` output under ``generated``)."""
    from PIL import Image

    best = {}
    for manifest in (generated / "users").glob("*/manifest.json"):
        best[json.loads(manifest.read_text(encoding="utf-8"))["user_id"]] = manifest.parent / "best.png"
    missing = [u for u in data.users if u not in best]
    if missing:
        from pmg.errors import PMGError

        raise PMGError(f"{len(missing)} users have no generated image in {generated} (first: {missing[0]!r}); "
                       f"see {generated / 'errors.jsonl'}")
    with torch.no_grad():
        return scorer.embed_images([Image.open(best[u]).convert("RGB") for u in data.users]).float()


def run_table4(bench: Path, out: Path, loader, scorer, *, seed: int = 0, steps: int | None = None, seeds: int = 5,
               batch=None, cfg: RecConfig = RecConfig(), progress: bool = True, models: dict | None = None) -> str:
    """Generate every user's preference image with ``pmg batch`` (resumable), then the four rows."""
    import time

    from PIL import Image

    from pmg.api import GenerationConfig
    from pmg.batch import BatchConfig, run_batch

    t0 = time.perf_counter()
    data = leave_last_out(bench)
    users = heldout_users(bench, data, out / "table4_users")
    config = GenerationConfig(seed=seed, weights=((1.0, 0.0),), num_inference_steps=steps)
    summary = run_batch(users, out / "generated", loader, config, batch or BatchConfig(users_per_call=8),
                        progress=progress, models=models)
    gen_s = time.perf_counter() - t0
    with torch.no_grad():
        items = scorer.embed_images([Image.open(p).convert("RGB") for p in data.item_images]).float()
    gen = generated_features(scorer, out / "generated", data)
    t1 = time.perf_counter()
    rows = table4_rows(data, items, gen, seeds=seeds, cfg=cfg)
    note = (f"LightGCN ({cfg.layers} LGConv layers, dim {cfg.dim}, BPR, {cfg.epochs} epochs) on {len(data.users)} users x "
            f"{len(data.items)} items, leave-last-out on {len(data.test)} users; mean and 95% t-interval over {seeds} seeds. "
            f"Image features: scorer {getattr(scorer, 'name', '?')}. Generated-user: PMG's image under the preference "
            f"condition only (w_p:w_t = 1:0), from each history without its held-out item "
            f"({summary['generated']} generated, {summary['skipped_already_done']} reused). "
            f"Run time: generation {gen_s:.0f} s, recommender {time.perf_counter() - t1:.0f} s.")
    return write_table4(rows, out, note)
