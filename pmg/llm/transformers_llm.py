"""transformers backend: any causal LM from a local folder, or a GGUF file (dequantised to torch)."""

from __future__ import annotations

from pathlib import Path

import torch

from pmg.errors import ModelLoadError
from pmg.llm.base import ChatRequest, render_plain
from pmg.quiet import quiet_loading

__all__ = ["TransformersLLM"]


class TransformersLLM:
    """Batched greedy decoding with left padding.

    Args:
        path: a model folder, or a ``.gguf`` file (needs the ``gguf`` package).
        model, tokenizer: pass already-built objects instead (tests, the soft-embedding trainer).
    """

    def __init__(self, path: str | Path | None = None, *, model=None, tokenizer=None, name: str | None = None,
                 dtype: torch.dtype = torch.float32, device: str = "cpu", batch_size: int = 8,
                 cache_dir: str | Path | None = None):
        if model is None:
            model, tokenizer = load_causal_lm(path, dtype=dtype, cache_dir=cache_dir)
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.name = name or (Path(path).name if path else type(model).__name__)
        self.batch_size = batch_size

    def render(self, req: ChatRequest) -> str:
        if getattr(self.tokenizer, "chat_template", None):
            msgs = ([{"role": "system", "content": req.system}] if req.system else []) + [
                {"role": "user", "content": req.user}
            ]
            text = self.tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
            return text + req.prefix
        return render_plain(req)

    @torch.no_grad()
    def generate(self, requests: list[ChatRequest]) -> list[str]:
        out: list[str] = []
        for i in range(0, len(requests), self.batch_size):
            batch = requests[i : i + self.batch_size]
            enc = self.tokenizer([self.render(r) for r in batch], return_tensors="pt", padding=True,
                                 add_special_tokens=False).to(self.model.device)
            gen = self.model.generate(
                input_ids=enc["input_ids"],
                attention_mask=enc["attention_mask"],
                max_new_tokens=max(r.max_new_tokens for r in batch),
                do_sample=False,
                pad_token_id=self.tokenizer.pad_token_id,
                repetition_penalty=1.1,
            )
            new = gen[:, enc["input_ids"].shape[1] :]
            out += [t.strip() for t in self.tokenizer.batch_decode(new, skip_special_tokens=True)]
        return out


def _dequantized_cache(gguf: Path, cache_dir: Path) -> Path:
    import hashlib

    st = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:16]
    return cache_dir / "llm-dequantized" / f"{gguf.stem}-{key}"


@quiet_loading()
def load_causal_lm(path: str | Path, dtype: torch.dtype = torch.float32, cache_dir: str | Path | None = None):
    """A causal LM and its tokenizer from a folder or a GGUF file.

    A llama-architecture GGUF file (SmolLM2) is read in one pass (``pmg.llm.gguf_torch``, about 2 s).
    Other GGUF files go through transformers, which dequantises tensor by tensor on every load; with
    ``cache_dir`` their fp32 weights are saved once (exact: greedy answers do not change) and reloaded fast.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    try:
        if path.suffix == ".gguf":
            if not path.is_file():
                raise ModelLoadError(f"GGUF file not found: {path}")
            from pmg.llm.gguf_torch import FAST_ARCHITECTURES, gguf_architecture, load_gguf_llama

            if gguf_architecture(path) in FAST_ARCHITECTURES:
                model, tok = load_gguf_llama(path, dtype=dtype)
                return model, tok
            cached = _dequantized_cache(path, Path(cache_dir)) if cache_dir else None
            if cached is not None and (cached / "config.json").is_file():
                tok = AutoTokenizer.from_pretrained(cached)
                return AutoModelForCausalLM.from_pretrained(cached, dtype=dtype), tok
            kw = dict(gguf_file=path.name)
            tok = AutoTokenizer.from_pretrained(path.parent, **kw)
            model = AutoModelForCausalLM.from_pretrained(path.parent, dtype=torch.float32, **kw)
            if cached is not None:
                import os
                import shutil

                from safetensors.torch import save_model

                tmp = cached.with_name(cached.name + f".tmp{os.getpid()}")
                tmp.mkdir(parents=True)
                # save_pretrained refuses GGUF-loaded models ("not serializable"): write plain files
                cfg = model.config.to_dict()
                cfg.pop("quantization_config", None)
                type(model.config).from_dict(cfg).save_pretrained(tmp)
                save_model(model, str(tmp / "model.safetensors"))
                tok.save_pretrained(tmp)
                shutil.rmtree(cached, ignore_errors=True)
                os.replace(tmp, cached)
            model = model.to(dtype)
        else:
            if not (path / "config.json").is_file():
                raise ModelLoadError(f"not a transformers model folder (no config.json): {path}")
            tok = AutoTokenizer.from_pretrained(path)
            model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    except ModelLoadError:
        raise
    except (OSError, ValueError, ImportError) as e:
        raise ModelLoadError(f"could not load the LLM from {path}: {e}") from None
    return model, tok
