"""Write pmg-mini's reference gallery: one art set the generator does not draw, as PNGs with captions.

PMG retrieves target exemplars from it (``pmg.pictures.gallery``). The set is a scorer-only one
(``build_data.SCORER_SOURCES``), so an exemplar is never the generator's own style's picture of the
answer. Pictures are 64 px, palette-quantised to keep the folder small.

    python -m training.pmg_mini.export_gallery --data data/pmg-mini --style fluent --out models/pmg-mini/gallery
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image


def export_gallery(data: Path, style: str, out: Path, colours: int = 96) -> int:
    from training.pmg_mini.build_data import SCORER_STYLES

    if style not in SCORER_STYLES:
        raise SystemExit(f"--style {style!r}: the gallery is a scorer-only set ({', '.join(SCORER_STYLES)})")
    meta = [json.loads(line) for line in open(data / "meta.jsonl")]
    images = np.load(data / "images.npy", mmap_mode="r")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    rows = []
    for i, m in enumerate(meta):
        if m["style"] != style:
            continue
        name = f"{m['hexcode']}.png"
        im = Image.fromarray(np.asarray(images[i])).quantize(colours, method=Image.Quantize.MEDIANCUT)
        im.save(out / name, optimize=True)
        rows.append({"file": name, "caption": ", ".join(dict.fromkeys([m["label"]] + m["tags"]))})
    (out / "captions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return len(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("data/pmg-mini"))
    ap.add_argument("--style", default="fluent")
    ap.add_argument("--out", type=Path, default=Path("models/pmg-mini/gallery"))
    args = ap.parse_args()
    print(f"{export_gallery(args.data, args.style, args.out)} pictures in {args.out}")


if __name__ == "__main__":
    main()
