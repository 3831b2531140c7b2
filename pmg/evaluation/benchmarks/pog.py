"""A loader for the POG clothing data (Alibaba iFashion, Chen et al. 2019) for people who have it.

POG is not installable offline; point ``load_pog`` at a local copy in its released format:

    item_data.txt   item_id,cate_id,pic_url,title         (title: space-separated words)
    user_data.txt   user_id,item_id;item_id;...,outfit_id  (clicked items in order)
    images/         optional, <item_id>.jpg or .png        (downloaded pictures)

Each user becomes a ``UserBehaviours`` (scenario clothing): the clicked items before the last are the
history (the paper's n = 10 most recent), the last clicked item is the target and its picture, when
present, the ground truth.
"""

from __future__ import annotations

import csv
from pathlib import Path

from pmg.behaviours.schema import UserBehaviours, parse_user
from pmg.errors import InputError

__all__ = ["load_pog"]


def _image(images: Path | None, item_id: str) -> str | None:
    if images is None:
        return None
    for ext in (".jpg", ".jpeg", ".png"):
        if (images / f"{item_id}{ext}").is_file():
            return str(images / f"{item_id}{ext}")
    return None


def load_pog(folder: str | Path, *, max_users: int | None = None, n_items: int = 10,
             min_items: int = 2) -> tuple[list[UserBehaviours], dict[str, str | None]]:
    """Users, and each user's ground-truth target image path (None without pictures)."""
    folder = Path(folder)
    for name in ("item_data.txt", "user_data.txt"):
        if not (folder / name).is_file():
            raise InputError(f"{folder}: {name} not found (POG format: item_data.txt, user_data.txt)")
    images = folder / "images" if (folder / "images").is_dir() else None
    items: dict[str, dict] = {}
    with open(folder / "item_data.txt", encoding="utf-8", newline="") as f:
        for n, row in enumerate(csv.reader(f), 1):
            if len(row) < 4:
                raise InputError(f"{folder / 'item_data.txt'}:{n}: expected item_id,cate_id,pic_url,title; got {row!r}")
            item_id, cate, _, title = row[0], row[1], row[2], ",".join(row[3:])
            items[item_id] = {"title": title.strip() or f"item {item_id}", "attributes": {"category": cate}}
    users, truth = [], {}
    with open(folder / "user_data.txt", encoding="utf-8", newline="") as f:
        for n, row in enumerate(csv.reader(f), 1):
            if len(row) < 2:
                raise InputError(f"{folder / 'user_data.txt'}:{n}: expected user_id,item_ids,outfit_id; got {row!r}")
            uid, clicks = row[0], [i for i in row[1].split(";") if i]
            clicks = [i for i in clicks if i in items]
            if len(clicks) < min_items:
                continue
            hist_ids, target_id = clicks[:-1][-n_items:], clicks[-1]

            def item(i):
                d = dict(items[i])
                if (img := _image(images, i)) is not None:
                    d["image"] = img
                return d

            target = {k: v for k, v in item(target_id).items() if k != "image"}
            users.append(parse_user({"user_id": uid, "scenario": "clothing", "history": [item(i) for i in hist_ids],
                                     "target": {"item": target}}, source=f"{folder / 'user_data.txt'}:{n}"))
            truth[uid] = _image(images, target_id)
            if max_users and len(users) >= max_users:
                break
    return users, truth
