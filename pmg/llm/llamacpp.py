"""llama.cpp backend (optional, much faster on CPU): ``pip install llama-cpp-python``."""

from __future__ import annotations

from pathlib import Path

from pmg.errors import ModelLoadError
from pmg.llm.base import ChatRequest

__all__ = ["LlamaCppLLM"]


class LlamaCppLLM:
    def __init__(self, gguf: str | Path, n_threads: int = 2, n_ctx: int = 4096):
        try:
            from llama_cpp import Llama
        except ImportError:
            raise ModelLoadError("the llama.cpp backend needs `pip install llama-cpp-python`") from None
        gguf = Path(gguf)
        if not gguf.is_file():
            raise ModelLoadError(f"GGUF file not found: {gguf}")
        self.llm = Llama(model_path=str(gguf), n_threads=n_threads, n_ctx=n_ctx, verbose=False, seed=0)
        self.name = f"llamacpp:{gguf.name}"

    def _prompt(self, req: ChatRequest) -> str:
        from jinja2 import Template

        tmpl = self.llm.metadata.get("tokenizer.chat_template")
        msgs = ([{"role": "system", "content": req.system}] if req.system else []) + [{"role": "user", "content": req.user}]
        if tmpl:
            return Template(tmpl).render(messages=msgs, add_generation_prompt=True) + req.prefix
        from pmg.llm.base import render_plain

        return render_plain(req)

    def generate(self, requests: list[ChatRequest]) -> list[str]:
        outs = []
        for r in requests:
            res = self.llm.create_completion(self._prompt(r), max_tokens=r.max_new_tokens, temperature=0.0,
                                             repeat_penalty=1.1)
            outs.append(res["choices"][0]["text"].strip())
        return outs
