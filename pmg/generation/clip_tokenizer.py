"""Build the exact Stable Diffusion 1.x ``CLIPTokenizer`` files from the BPE vocabulary inside the
``open-clip-torch`` wheel (no weights, no download). Used to save SD-layout folders offline."""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path

from pmg.errors import ModelLoadError

__all__ = ["clip_bpe_path", "write_clip_tokenizer_files"]


def clip_bpe_path() -> Path:
    spec = importlib.util.find_spec("open_clip")  # locate only: importing open_clip needs torchvision
    if spec is None:
        raise ModelLoadError("the CLIP vocabulary comes from `pip install --no-deps open-clip-torch==3.3.0`")
    return Path(spec.submodule_search_locations[0]) / "bpe_simple_vocab_16e6.txt.gz"


def _bytes_to_unicode() -> dict[int, str]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def write_clip_tokenizer_files(folder: str | Path, bpe_path: Path | None = None) -> Path:
    """vocab.json + merges.txt + configs, as in SD 1.5's tokenizer/ folder (49,408 tokens)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lines = gzip.open(bpe_path or clip_bpe_path()).read().decode("utf-8").split("\n")
    merges = [tuple(m.split()) for m in lines[1 : 49152 - 256 - 2 + 1]]
    vocab = list(_bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab] + ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")
    cfg = {"model_max_length": 77, "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
           "unk_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "do_lower_case": True,
           "tokenizer_class": "CLIPTokenizer"}
    (folder / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2))
    (folder / "special_tokens_map.json").write_text(json.dumps({k: cfg[k] for k in ("bos_token", "eos_token", "unk_token", "pad_token")}))
    return folder
