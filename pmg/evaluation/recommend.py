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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pmg.evaluation.protocols import PROTOCOLS, Catalogue, Split, generation_inputs, load_catalogue, make_split

__all__ = ["Interactions", "interactions", "FeatureLightGCN", "RecConfig", "train_and_evaluate", "ROWS",
           "table4_rows", "write_table4", "run_table4", "EXTRACTORS"]

ROWS = ("No-image", "Item-only", "Averaged-user", "Generated-user")


@dataclass
class Interactions:
    """The recommender's input: a catalogue under a protocol."""

    users: list[str]  # user ids
    items: list[str]  # item keys
    item_images: list[Path]
    train: list[list[int]]  # per user: training item indices (distinct)
    test: dict[int, list[int]]  # evaluated user index -> held-out item indices
    candidates: list[int] | None = None  # items that may be recommended (None: all)
    seen: list[list[int]] | None = None  # per user: items their features may see (default: the training items)

    @property
    def edge_index(self) -> torch.Tensor:
        """The bipartite graph, both directions; items are numbered after users."""
        u = [ui for ui, its in enumerate(self.train) for _ in its]
        i = [len(self.users) + it for its in self.train for it in its]
        return torch.tensor([u + i, i + u], dtype=torch.long)


def interactions(cat: Catalogue, split: Split) -> Interactions:
    """A catalogue under a protocol's split."""
    seen = [split.seen_items(u, h) for u, h in enumerate(cat.histories)]
    return Interactions(cat.users, cat.items, cat.item_images, split.train, split.test, split.candidates, seen)


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
    torch.manual_seed(seed)
    n_u, n_i = len(data.users), len(data.items)
    model = FeatureLightGCN(n_u, n_i, cfg.dim, cfg.layers, item_features, user_features)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    edge_index = data.edge_index
    users = torch.tensor([u for u, its in enumerate(data.train) for _ in its])
    pos = torch.tensor([i for its in data.train for i in its])
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
    return rank_metrics(x[:n_u], x[n_u:], data, cfg.k)


def rank_metrics(user_x: torch.Tensor, item_x: torch.Tensor, data: Interactions, k: int) -> dict[str, float]:
    """Recall@k and NDCG@k of dot-product scores over the evaluated users: known items are never
    recommended, and only candidates are (when the protocol names them)."""
    from torch_geometric.metrics import LinkPredNDCG, LinkPredRecall

    test_users = sorted(data.test)
    scores = user_x[test_users] @ item_x.T
    for row, u in enumerate(test_users):  # what the user has (trains on, or their features saw)
        scores[row, sorted(set(data.train[u]) | set(data.seen[u] if data.seen else []))] = -math.inf
    if data.candidates is not None:
        outside = torch.ones(item_x.shape[0], dtype=torch.bool)
        outside[data.candidates] = False
        scores[:, outside] = -math.inf
    top = scores.topk(k, dim=1).indices
    truth = torch.tensor([[row, i] for row, u in enumerate(test_users) for i in data.test[u]]).T
    recall, ndcg = LinkPredRecall(k), LinkPredNDCG(k)
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
    avg = averaged_users(item_features, data.seen or data.train)
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


def averaged_users(item_features: torch.Tensor, items: list[list[int]]) -> torch.Tensor:
    """Each user's mean item feature (zeros for a user with none)."""
    return torch.stack([item_features[its].mean(0) if its else item_features.new_zeros(item_features.shape[1])
                        for its in items])


_CSV_HEAD = ["protocol", "features", "row", "item", "user", "recall10_mean", "recall10_low", "recall10_high",
             "ndcg10_mean", "ndcg10_low", "ndcg10_high", "seeds", "users_evaluated"]


def _md_rows(rows: list[dict]) -> list[str]:
    lines = ["| | Item | User | Recall@10 (95% CI) | NDCG@10 (95% CI) |", "|---|---|---|---|---|"]
    for r in rows:
        rec, nd = r["recall@10"], r["ndcg@10"]
        lines.append(f"| {r['row']} | {'yes' if r['item'] else 'no'} | {r['user']} | "
                     f"{100 * rec[0]:.2f}% [{100 * rec[1]:.2f}, {100 * rec[2]:.2f}] | {nd[0]:.4f} [{nd[1]:.4f}, {nd[2]:.4f}] |")
    return lines


def write_table4(tables: dict[str, list[dict]], out: Path, protocol: str = "warm", note: str = "",
                 evaluated: int = 0) -> str:
    """out/table4-<protocol>.md and .csv (one four-row table per image feature extractor, the first the
    main one), then out/table4.md and .csv gathering every protocol's file found there."""
    import csv

    out.mkdir(parents=True, exist_ok=True)
    parts = []
    for i, (features, rows) in enumerate(tables.items()):
        title = f"Image features: {features}" + ("" if i == 0 else " (check)")
        parts.append("\n".join([f"**{title}**", "", *_md_rows(rows)]))
    text = f"### Protocol: {protocol}\n\n" + "\n\n".join(parts) + ("\n\n" + note if note else "") + "\n"
    (out / f"table4-{protocol}.md").write_text(text, encoding="utf-8")
    with (out / f"table4-{protocol}.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(_CSV_HEAD)
        for features, rows in tables.items():
            for r in rows:
                w.writerow([protocol, features, r["row"], r["item"], r["user"], *[f"{v:.6f}" for v in r["recall@10"]],
                            *[f"{v:.6f}" for v in r["ndcg@10"]], len(r["runs"]), evaluated])
    _gather(out)
    return text


def _gather(out: Path) -> None:
    """table4.md / table4.csv: every protocol's table in out, in PROTOCOLS order."""
    done = [p for p in PROTOCOLS if (out / f"table4-{p}.md").is_file()]
    (out / "table4.md").write_text("\n".join((out / f"table4-{p}.md").read_text(encoding="utf-8") for p in done),
                                   encoding="utf-8")
    lines = [",".join(_CSV_HEAD)]
    for p in done:
        lines += (out / f"table4-{p}.csv").read_text(encoding="utf-8").splitlines()[1:]
    (out / "table4.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


# --- image features -------------------------------------------------------------------------------------

def _open(paths: list[Path]) -> list:
    from PIL import Image

    return [Image.open(p).convert("RGB") for p in paths]


def alexnet_features(paths: list[Path], size: int = 64, batch: int = 256) -> torch.Tensor:
    """LPIPS's AlexNet (ImageNet-trained, LPIPS-calibrated): each of its five taps unit-normalised along
    channels and averaged over space, concatenated (1,152 values) and unit-normalised."""
    from pmg.evaluation.lpips import LPIPS

    net = LPIPS("alex")
    out = []
    for i in range(0, len(paths), batch):
        x = torch.stack([torch.from_numpy(np.asarray(im.resize((size, size)), dtype=np.float32)).permute(2, 0, 1)
                         for im in _open(paths[i : i + batch])]) / 127.5 - 1
        out.append(torch.cat([f.mean(dim=(2, 3)) for f in net.unit_features(x)], dim=1))
    return torch.nn.functional.normalize(torch.cat(out), dim=1)


def scorer_features(scorer, paths: list[Path], batch: int = 256) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([scorer.embed_images(_open(paths[i : i + batch])).float() for i in range(0, len(paths), batch)])


EXTRACTORS = {"alexnet": alexnet_features}  # checks beside the scorer's image tower


def generated_images(folders: list[Path], users: list[str]) -> list[Path | None]:
    """Each user's generated image (``best.png`` of a ``pmg batch`` output; the first folder that has the
    user wins), None for a user with none."""
    best = {}
    for folder in reversed(folders):
        for manifest in (folder / "users").glob("*/manifest.json"):
            best[json.loads(manifest.read_text(encoding="utf-8"))["user_id"]] = manifest.parent / "best.png"
    return [best.get(u) for u in users]


def _user_features(extract, images: list[Path | None], dim: int) -> torch.Tensor:
    """Features of the users' images, zeros for a user with none (nothing visible to generate from)."""
    have = [i for i, p in enumerate(images) if p is not None]
    feats = torch.zeros(len(images), dim)
    if have:
        feats[have] = extract([images[i] for i in have])
    return feats


# --- the whole table ------------------------------------------------------------------------------------

def _generate(cat: Catalogue, split: Split, warm: Split, protocol: str, out: Path, loader, config, batch, progress: bool,
              models: dict | None) -> tuple[list[Path], dict]:
    """Generate (resumably) every user's image from their warm-visible history into generated/warm, and, for
    a protocol that shows some users less, those users' images into generated/<protocol>. Returns the
    folders to look in, most specific first, and the counts."""
    from pmg.batch import run_batch
    from pmg.errors import PMGError

    jobs = [("warm", {u: warm.visible[u] for u in range(len(cat.users))})]
    changed = {u: v for u, v in enumerate(split.visible) if v != warm.visible[u]}
    if changed:
        jobs.insert(0, (protocol, changed))
    counts = {"generated": 0, "reused": 0}
    for name, visible in jobs:
        users = out / "table4_users" / name
        if users.exists():  # inputs of an earlier run: rewritten from this run's split
            import shutil

            shutil.rmtree(users)
        written = generation_inputs(cat, visible, users)
        summary = run_batch(users, out / "generated" / name, loader, config, batch, progress=progress, models=models)
        counts["generated"] += summary["generated"]
        counts["reused"] += summary["skipped_already_done"]
        if summary["failed"] or summary["not_reached"]:
            raise PMGError(f"{summary['failed'] + summary['not_reached']} of {len(written)} users have no generated "
                           f"image; see {out / 'generated' / name / 'errors.jsonl'}")
    return [out / "generated" / name for name, _ in jobs], counts


def run_table4(bench: Path, out: Path, loader, scorer, *, protocol: str = "warm", limit: int | None = None,
               seed: int = 0, steps: int | None = None, seeds: int = 5, batch=None, cfg: RecConfig = RecConfig(),
               progress: bool = True, models: dict | None = None, checks: tuple[str, ...] = ("alexnet",)) -> str:
    """One protocol of Table 4 on a benchmark's first ``limit`` users: generate each user's preference
    image with ``pmg batch`` (resumable) from what the protocol lets their features see, then the four rows
    with the scorer's image features and with each of ``checks``' (``EXTRACTORS``)."""
    import time

    from pmg.api import GenerationConfig
    from pmg.batch import BatchConfig

    if protocol not in PROTOCOLS:
        from pmg.errors import ConfigError

        raise ConfigError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    t0 = time.perf_counter()
    cat = load_catalogue(bench, limit)
    split, warm = make_split(protocol, cat.histories), make_split("warm", cat.histories)
    config = GenerationConfig(seed=seed, weights=((1.0, 0.0),), num_inference_steps=steps)
    folders, counts = _generate(cat, split, warm, protocol, out, loader, config, batch or BatchConfig(users_per_call=8),
                                progress, models)
    gen_s = time.perf_counter() - t0
    images = generated_images(folders, cat.users)
    data = interactions(cat, split)
    tables = {}
    t1 = time.perf_counter()
    for name in (f"scorer {getattr(scorer, 'name', '?')}", *checks):
        extract = EXTRACTORS[name] if name in EXTRACTORS else (lambda ps: scorer_features(scorer, ps))
        items = extract(cat.item_images)
        tables[name] = table4_rows(data, items, _user_features(extract, images, items.shape[1]), seeds=seeds, cfg=cfg)
    n_test = sum(len(t) for t in data.test.values())
    note = (f"LightGCN ({cfg.layers} LGConv layers, dim {cfg.dim}, BPR, {cfg.epochs} epochs) on {len(cat.users)} users x "
            f"{len(cat.items)} items ({sum(map(len, data.train))} training edges); {len(data.test)} users evaluated on "
            f"{n_test} held-out items" + (f", ranked among the {len(data.candidates)} cold items" if data.candidates else "")
            + f"; mean and 95% t-interval over {seeds} seeds. Generated-user: PMG's image under the preference condition "
            f"only (w_p:w_t = 1:0) from the history the protocol lets the user's features see "
            f"({counts['generated']} generated, {counts['reused']} reused). "
            f"Run time: generation {gen_s:.0f} s, recommender {time.perf_counter() - t1:.0f} s.")
    return write_table4(tables, out, protocol, note, len(data.test))
