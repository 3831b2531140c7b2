"""Which pictures a user's conditions carry (image prompts), and the selection's picture terms.

* **History pictures** (preference condition): of the paper's window (the last ``HISTORY_WINDOW``
  items), the ``k`` most representative pictures: the picture used most often first, ties broken by
  the most recent use (``representative``), each once.
* **Target pictures** (target condition): the target item's own picture when it has one (a clothing
  target), else the gallery's nearest exemplar to the target keywords (``Gallery.search``).

A picture that cannot be decoded is skipped with a warning naming its item; nothing else is lost.
The manifest records every picture that went in by its content hash (``PicturePrompts.records``).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

from PIL import Image

from pmg.generation.image_prompts import representative
from pmg.pictures.gallery import file_hash

__all__ = ["PicturePrompts", "choose_pictures", "HISTORY_WINDOW"]

HISTORY_WINDOW = 10  # the paper's window: the keyword stage reads the last 10 items too


@dataclass
class PicturePrompts:
    target: list[Image.Image] = field(default_factory=list)
    history: list[Image.Image] = field(default_factory=list)
    records: list[dict] = field(default_factory=list)  # {"role", "sha256_16", "source", "caption"?} per picture
    warnings: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.target or self.history)

    @property
    def images(self) -> list[Image.Image]:
        """The pictures in the order of ``records``."""
        by_role = {"history": iter(self.history), "target": iter(self.target)}
        return [next(by_role[r["role"]]) for r in self.records]


def _decode(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im.convert("RGB")


def choose_pictures(user, target_keywords: list[str], *, k: int, history: bool, target: bool, gallery=None,
                    embed_text=None) -> PicturePrompts:
    """The pictures for one user's conditions. ``gallery`` and ``embed_text`` (texts -> unit embeddings in
    the gallery's space) find exemplars for a target without a picture; without them it gets none."""
    out = PicturePrompts()
    if history and k > 0:
        window = list(enumerate(user.history))[-HISTORY_WINDOW:]
        pics: dict[str, tuple[int, bytes]] = {}
        order = []
        for i, item in window:
            if not item.has_image:
                continue
            try:
                data = item.image_bytes()
            except OSError as e:
                out.warnings.append(f"history[{i}].image skipped: {e.__class__.__name__}")
                continue
            h = file_hash(data)
            pics[h] = (i, data)  # its latest use
            order.append(h)
        for h in representative(order, k):
            i, data = pics[h]
            try:
                out.history.append(_decode(data))
            except Exception as e:  # noqa: BLE001 - a picture that does not decode is skipped, named
                out.warnings.append(f"history[{i}].image skipped: not a readable picture ({e.__class__.__name__})")
                continue
            out.records.append({"role": "history", "sha256_16": h, "source": f"history[{i}]"})
    if target:
        item = user.target.item
        if item is not None and item.has_image:
            data = item.image_bytes()
            try:
                out.target.append(_decode(data))
                out.records.append({"role": "target", "sha256_16": file_hash(data), "source": "target.item"})
            except Exception as e:  # noqa: BLE001
                out.warnings.append(f"target.item.image skipped: not a readable picture ({e.__class__.__name__})")
        elif gallery is not None and embed_text is not None and target_keywords:
            j = gallery.search(embed_text([", ".join(target_keywords)])[0], 1)[0]
            out.target.append(gallery.picture(j))
            out.records.append({"role": "target", "sha256_16": gallery.hashes[j],
                                "source": f"gallery:{gallery.files[j].relative_to(gallery.folder).as_posix()}",
                                "caption": gallery.captions[j]})
    return out
