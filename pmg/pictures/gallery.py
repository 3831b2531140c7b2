"""A reference gallery: a folder of pictures with captions, indexed once, searched by text and by picture.

PMG retrieves exemplars of a target from it (the target condition's image prompt when the target has
no picture of its own). Any folder works: a shop's catalogue, an art set. Captions come from
``captions.jsonl`` in the folder (``{"file": "a.png", "caption": "grinning face, happy"}`` per line),
else from a ``a.txt`` beside ``a.png``, else from the file name ("grinning_face.png" -> "grinning face").

Indexing embeds every picture and caption with the scorer (a CLIP-style model: pictures and texts in
one space) and caches the embeddings by file hash under the cache folder, so a second index of the
same folder reads them back and a changed file is embedded again. Files that are not readable
pictures are skipped and counted (``Gallery.skipped``).
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pmg.errors import InputError

__all__ = ["Gallery", "PICTURE_SUFFIXES", "file_hash", "gallery_folder"]

PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp")
MAX_GALLERY_FILES = 200_000


def file_hash(data: bytes) -> str:
    """The short content hash pictures are known by (caches, manifests)."""
    return hashlib.sha256(data).hexdigest()[:16]


def _captions(folder: Path) -> dict[str, str]:
    path = folder / "captions.jsonl"
    out: dict[str, str] = {}
    if path.is_file():
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                out[str(row["file"])] = str(row["caption"])
            except (ValueError, KeyError, TypeError):
                raise InputError(f"{path}:{n}: each line must be {{\"file\": ..., \"caption\": ...}}") from None
    return out


def gallery_folder(spec: str | Path | None, generator: str | Path) -> Path | None:
    """The gallery a generator uses: 'auto' its folder's own ``gallery/`` (None if it ships none), None or
    'none' none, else the folder given (checked)."""
    if spec in (None, "none"):
        return None
    if spec == "auto":
        from pmg.registry import resolve_generator

        own = resolve_generator(generator) / "gallery"
        return own if own.is_dir() else None
    folder = Path(spec).expanduser()
    if not folder.is_dir():
        raise InputError(f"gallery {spec}: not a folder")
    return folder


def caption_for(path: Path, captions: dict[str, str], root: Path) -> str:
    rel = path.relative_to(root).as_posix()
    if rel in captions:
        return captions[rel]
    side = path.with_suffix(".txt")
    if side.is_file():
        return side.read_text().strip()
    return path.stem.replace("_", " ").replace("-", " ")


@dataclass
class Gallery:
    """Pictures of a folder and their embeddings: ``image_embeds`` and ``text_embeds`` (N, E), unit rows."""

    folder: Path
    files: list[Path]
    captions: list[str]
    hashes: list[str]
    image_embeds: torch.Tensor
    text_embeds: torch.Tensor
    skipped: list[str] = field(default_factory=list)  # files that are no readable picture

    def __len__(self) -> int:
        return len(self.files)

    @classmethod
    def index(cls, folder: str | Path, scorer, cache_dir: str | Path | None = None, *, progress: bool = True,
              batch: int = 256) -> "Gallery":
        """Index ``folder`` with ``scorer`` (``embed_images``, ``embed_texts``, ``name``); embeddings cached
        by file hash in ``cache_dir``/gallery/ (None: no cache)."""
        from pmg.limits import MAX_IMAGE_PIXELS

        folder = Path(folder)
        if not folder.is_dir():
            raise InputError(f"gallery {folder}: not a folder")
        paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in PICTURE_SUFFIXES and p.is_file())
        if len(paths) > MAX_GALLERY_FILES:
            raise InputError(f"gallery {folder}: {len(paths)} pictures, at most {MAX_GALLERY_FILES}")
        captions = _captions(folder)
        cache = _EmbeddingCache(Path(cache_dir) / "gallery" / _safe(scorer.name) if cache_dir else None)
        files, caps, hashes, skipped, todo = [], [], [], [], []
        for p in paths:
            data = p.read_bytes()
            try:
                with Image.open(io.BytesIO(data)) as im:
                    if im.width * im.height > MAX_IMAGE_PIXELS:
                        raise ValueError("too large")
                    im.verify()
            except Exception:  # noqa: BLE001 - any unreadable file is junk to skip, never a crash
                skipped.append(p.relative_to(folder).as_posix())
                continue
            h = file_hash(data)
            files.append(p), caps.append(caption_for(p, captions, folder)), hashes.append(h)
            if (h, caps[-1]) not in cache:
                todo.append(len(files) - 1)
        it = range(0, len(todo), batch)
        if progress and todo:
            from tqdm import tqdm

            it = tqdm(it, desc=f"indexing {folder.name}", unit="batch", total=-(-len(todo) // batch))
        for s in it:
            idx = todo[s : s + batch]
            ims = [Image.open(files[i]).convert("RGB") for i in idx]
            e_img = scorer.embed_images(ims)
            e_txt = scorer.embed_texts([caps[i] for i in idx])
            for j, i in enumerate(idx):
                cache.put((hashes[i], caps[i]), e_img[j], e_txt[j])
        cache.save()
        if not files:
            raise InputError(f"gallery {folder}: no readable pictures ({len(skipped)} skipped)")
        if skipped:
            import warnings

            warnings.warn(f"gallery {folder}: {len(skipped)} file(s) skipped, no readable picture: "
                          f"{', '.join(skipped[:5])}{' ...' if len(skipped) > 5 else ''}", stacklevel=2)
        e_img, e_txt = zip(*(cache.get((h, c)) for h, c in zip(hashes, caps)))
        return cls(folder, files, caps, hashes, torch.stack(e_img), torch.stack(e_txt), skipped)

    def search(self, query: torch.Tensor, k: int = 1, *, by: str = "both") -> list[int]:
        """The ``k`` nearest pictures to a unit query embedding (a text's or a picture's, from the same
        scorer): by their picture, their caption, or the mean of both similarities."""
        if by not in ("image", "caption", "both"):
            raise ValueError(f"by must be 'image', 'caption' or 'both', got {by!r}")
        q = query.reshape(-1).float()
        sims = {"image": lambda: self.image_embeds @ q, "caption": lambda: self.text_embeds @ q,
                "both": lambda: 0.5 * (self.image_embeds @ q + self.text_embeds @ q)}[by]()
        return torch.topk(sims, min(k, len(self))).indices.tolist()

    def picture(self, i: int) -> Image.Image:
        return Image.open(self.files[i]).convert("RGB")


class _EmbeddingCache:
    """(hash, caption) -> (image embedding, caption embedding), in one .npz file."""

    def __init__(self, folder: Path | None):
        self.path = folder / "embeddings.npz" if folder else None
        self.rows: dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor]] = {}
        self.dirty = False
        if self.path is not None and self.path.is_file():
            try:
                with np.load(self.path, allow_pickle=False) as z:
                    for h, c, a, b in zip(z["hashes"], z["captions"], z["image"], z["text"]):
                        self.rows[(str(h), str(c))] = (torch.from_numpy(a), torch.from_numpy(b))
            except (OSError, ValueError, KeyError):
                self.rows = {}  # a broken cache is rebuilt

    def __contains__(self, key) -> bool:
        return key in self.rows

    def get(self, key):
        return self.rows[key]

    def put(self, key, image: torch.Tensor, text: torch.Tensor) -> None:
        self.rows[key] = (image.float(), text.float())
        self.dirty = True

    def save(self) -> None:
        if self.path is None or not self.dirty:
            return
        from pmg.io.atomic import write_bytes_atomic

        keys = list(self.rows)
        buf = io.BytesIO()
        np.savez(buf, hashes=np.array([k[0] for k in keys]), captions=np.array([k[1] for k in keys]),
                 image=np.stack([self.rows[k][0].numpy() for k in keys]), text=np.stack([self.rows[k][1].numpy() for k in keys]))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(self.path, buf.getvalue())


def _safe(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:16]
