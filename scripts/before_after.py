"""The README's before/after figure: the contact sheets of several `pmg generate` runs, stacked.

    .venv/bin/pmg generate examples/users/cat_lover.json --out out/cat_lover
    .venv/bin/pmg generate examples/users/dog_lover.json --out out/dog_lover
    .venv/bin/python scripts/before_after.py out/cat_lover out/dog_lover --out docs/before_after.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image


def stack(folders: list[Path], gap: int = 16) -> Image.Image:
    sheets = []
    for f in folders:
        path = f / "contact_sheet.png"
        if not path.is_file():
            raise SystemExit(f"{path} not found: run `pmg generate USER.json --out {f}` first")
        sheets.append(Image.open(path).convert("RGB"))
    width = max(s.width for s in sheets)
    out = Image.new("RGB", (width, sum(s.height for s in sheets) + gap * (len(sheets) - 1)), "white")
    y = 0
    for s in sheets:
        out.paste(s, (0, y))
        y += s.height + gap
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", type=Path, nargs="+", help="output folders of `pmg generate`")
    ap.add_argument("--out", type=Path, default=Path("docs/before_after.png"))
    a = ap.parse_args()
    stack(a.folders).save(a.out)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
