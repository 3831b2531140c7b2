"""Write a result: PNGs, a contact sheet, and a manifest JSON (keywords, prompt version, weights, seed,
scores, model names, file hashes, timings). Everything is written to a temporary folder first and
moved into place at the end, so an interrupted run leaves nothing half-written."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

import pmg

__all__ = ["save_result", "contact_sheet", "manifest_dict", "DISPLAY_SIZE"]

DISPLAY_SIZE = 256  # generated images smaller than this are also saved enlarged, for people to look at


def _enlarge(im: Image.Image, size: int = DISPLAY_SIZE) -> Image.Image:
    if im.width >= size:
        return im
    return im.resize((size, size * im.height // im.width), Image.LANCZOS)


def font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _wrap(draw, text: str, font, width: int) -> list[str]:
    lines, cur = [], ""
    for word in text.split(" "):
        trial = f"{cur} {word}".strip()
        if draw.textlength(trial, font=font) > width and cur:
            lines.append(cur)
            cur = word
        else:
            cur = trial
    return lines + [cur] if cur else lines


def candidate_file(i: int, c, noises: int | None = 1) -> str:
    """A candidate's file: index and weights, and its noise when there are several."""
    return f"candidates/{i:02d}_wp{c.w_p:g}_wt{c.w_t:g}" + (f"_n{c.noise}" if (noises or 1) > 1 else "") + ".png"


def contact_sheet(result, cell: int = 192) -> Image.Image:
    """All candidates side by side, scores under each, the chosen one framed in green."""
    n = len(result.candidates)
    pad, text_h = 12, 58
    width = max(n * (cell + pad) + pad, 640)
    f_small, f_title = font(14), font(16)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    header = [f"user {result.user_id} ({result.scenario})"]
    header += _wrap(probe, "target: " + ", ".join(result.keywords.target), f_small, width - 2 * pad)
    pref = ", ".join(result.keywords.preference) or "(none)"
    header += _wrap(probe, "preference: " + pref, f_small, width - 2 * pad)
    pictures = list(zip(getattr(result, "pictures", []), getattr(result, "picture_images", [])))
    thumb = 64
    head_h = 10 + 20 * len(header) + (thumb + 26 if pictures else 0)
    sheet = Image.new("RGB", (width, head_h + cell + text_h + 2 * pad), "white")
    d = ImageDraw.Draw(sheet)
    for i, line in enumerate(header):
        d.text((pad, 6 + 20 * i), line, fill="black", font=f_title if i == 0 else f_small)
    if pictures:  # the image prompts: the history's pictures, then the target's
        y = 10 + 20 * len(header)
        d.text((pad, y), "image prompts:", fill="black", font=f_small)
        for i, (rec, im) in enumerate(pictures):
            x = pad + 110 + i * (thumb + 8)
            sheet.paste(im.convert("RGB").resize((thumb, thumb), Image.LANCZOS), (x, y))
            d.text((x, y + thumb + 2), rec["role"], fill=(90, 90, 90), font=f_small)
    for i, c in enumerate(result.candidates):
        x, y = pad + i * (cell + pad), head_h + pad
        sheet.paste(c.image.convert("RGB").resize((cell, cell), Image.LANCZOS), (x, y))
        if i == result.best:
            d.rectangle([x - 4, y - 4, x + cell + 3, y + cell + 3], outline=(0, 170, 60), width=4)
        dp = "-" if c.d_p is None else f"{c.d_p:.3f}"
        noise = f", noise {c.noise}" if (result.config.noises or 1) > 1 else ""
        lines = [f"w_p:w_t = {c.w_p:g}:{c.w_t:g}{noise}", f"d_p {dp}  d_t {c.d_t:.3f}",
                 f"z {c.z:.3f}" + ("  (chosen)" if i == result.best else "")]
        for j, line in enumerate(lines):
            d.text((x, y + cell + 6 + 17 * j), line, fill=(0, 120, 40) if i == result.best else "black", font=f_small)
    return sheet


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def manifest_dict(result, files: dict[str, str], extra: dict | None = None) -> dict:
    cfg = result.config.to_dict()
    kw = result.keywords.to_dict()
    return {
        "pmg_version": pmg.__version__,
        "user_id": result.user_id,
        "scenario": result.scenario,
        "prompt_version": kw["prompt_version"],
        "keywords": {k: kw[k] for k in ("preference", "target", "per_attribute", "raw_answers", "cached", "llm_calls")},
        "behaviour_text": kw["behaviour_text"],
        "config": cfg,
        "seed": result.config.seed,
        "alpha": result.config.alpha,
        "best": result.best,
        "candidates": [
            {"index": i, "w_p": c.w_p, "w_t": c.w_t, "noise": c.noise, "d_p": c.d_p, "d_t": c.d_t, "z": c.z,
             "p_img": getattr(c, "p_img", None), "t_img": getattr(c, "t_img", None),
             "file": candidate_file(i, c, result.config.noises), "size": list(c.image.size)}
            for i, c in enumerate(result.candidates)
        ],
        "models": result.models,
        "timings": {k: round(v, 4) for k, v in result.timings.items()},
        "warnings": result.warnings,
        "pictures": getattr(result, "pictures", []),
        "files": files,
        **(extra or {}),
    }


def finite(obj):
    """NaN and infinity become null: the manifest is strict JSON every parser reads."""
    import math

    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def strict_json(obj) -> str:
    return json.dumps(finite(obj), indent=2, ensure_ascii=False, allow_nan=False)


def save_result(result, out_dir: str | Path, extra: dict | None = None) -> Path:
    """Write everything under ``out_dir``; returns the manifest path. ``extra``: more top-level manifest
    entries (``pmg batch`` records its input key there)."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".pmg-", dir=out_dir.parent))
    try:
        (tmp / "candidates").mkdir()
        names = []
        for i, c in enumerate(result.candidates):
            name = candidate_file(i, c, result.config.noises)
            c.image.save(tmp / name)
            names.append(name)
        best = result.best_image
        best.save(tmp / "best.png")
        _enlarge(best).save(tmp / "best_large.png")
        contact_sheet(result).save(tmp / "contact_sheet.png")
        files = {n: _sha256(tmp / n) for n in ["best.png", "best_large.png", "contact_sheet.png", *names]}
        (tmp / "manifest.json").write_text(strict_json(manifest_dict(result, files, extra)))
        out_dir.mkdir(exist_ok=True)
        (out_dir / "candidates").mkdir(exist_ok=True)
        for n in [*files, "manifest.json"]:  # manifest last: its presence means the rest is there
            os.replace(tmp / n, out_dir / n)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir / "manifest.json"
