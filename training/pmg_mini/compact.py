"""A training run's state, small enough to keep in the repository: fp16 weights and EMA, no optimiser.

A generator run that outlasts one machine is carried over in one file at a fixed path
(``RESUME_PATH``, <= 50 MB for the 11.6M-parameter U-Net); the next machine resumes it with a fresh
optimiser, re-warmed over ``warmup`` steps. The file is removed when the model ships.

    python -m training.pmg_mini.compact --ckpt RUN/ckpt.pt            # write RESUME_PATH
    python -m training.pmg_mini.train_generator ... --resume-compact training/pmg_mini/resume/generator.safetensors
    python -m training.pmg_mini.compact --ckpt RUN/ckpt.pt --ema-only # a finished run: its EMA alone
    python -m training.pmg_mini.compact --export-to RUN               # the EMA as RUN/export/unet
    python -m training.pmg_mini.export --gen-run RUN --out MODEL_DIR  # then assemble the model folder
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

__all__ = ["RESUME_PATH", "save_compact", "load_compact", "export_compact"]

RESUME_PATH = Path(__file__).parent / "resume" / "generator.safetensors"


def save_compact(unet_state: dict, ema_state: dict, step: int, path: Path = RESUME_PATH, config: dict | None = None) -> Path:
    """Write ``unet.*`` and ``ema.*`` tensors in fp16 with the step (and the run's config) as metadata.
    An empty ``unet_state`` keeps the EMA alone (a finished run: half the size)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {f"unet.{k}": v.detach().to(torch.float16).contiguous() for k, v in unet_state.items()}
    tensors |= {f"ema.{k}": v.detach().to(torch.float16).contiguous() for k, v in ema_state.items()}
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata={"step": str(step), "config": json.dumps(config or {})})
    tmp.replace(path)
    return path


def load_compact(path: Path) -> tuple[dict, dict, int, dict]:
    """(U-Net state, EMA state, step, config) in fp32 from ``save_compact``'s file."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    tensors = load_file(str(path))
    unet = {k[5:]: v.float() for k, v in tensors.items() if k.startswith("unet.")}
    ema = {k[4:]: v.float() for k, v in tensors.items() if k.startswith("ema.")}
    return unet or dict(ema), ema, int(meta["step"]), json.loads(meta.get("config", "{}"))  # EMA alone: go on from it


def export_compact(path: Path, run: Path) -> int:
    """The EMA of ``save_compact``'s file as ``run/export/unet`` (fp16 diffusers layout) with the run's
    ``config.json``: what ``training.pmg_mini.export --gen-run run`` reads. Returns the step."""
    from training.pmg_mini.unet import build_unet, export

    _, ema, step, config = load_compact(path)
    if not config.get("unet_config"):
        raise SystemExit(f"{path}: no run config in its metadata (written by an older compact?)")
    unet = build_unet(config["unet_config"], None, config.get("factor", 2))
    unet.load_state_dict(ema)
    run = Path(run)
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.json").write_text(json.dumps(config, indent=2))
    export(unet, run, step)
    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", type=Path, default=None, help="a train_generator run's ckpt.pt")
    ap.add_argument("--out", type=Path, default=RESUME_PATH)
    ap.add_argument("--ema-only", action="store_true", help="keep the EMA alone (a finished run)")
    ap.add_argument("--export-to", type=Path, default=None,
                    help="write the EMA of --out's compact file as RUN/export/unet instead")
    a = ap.parse_args()
    if a.export_to is not None:
        step = export_compact(a.out, a.export_to)
        print(f"step {step}: {a.out} -> {a.export_to / 'export' / 'unet'}")
        return
    if a.ckpt is None:
        ap.error("--ckpt (a run's ckpt.pt) or --export-to RUN is needed")
    ck = torch.load(a.ckpt, weights_only=False, map_location="cpu")
    config_file = a.ckpt.parent / "config.json"
    config = json.loads(config_file.read_text()) if config_file.is_file() else {}
    out = save_compact({} if a.ema_only else ck["unet"], ck["ema"], ck["step"], a.out, config)
    print(f"step {ck['step']} -> {out} ({out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
