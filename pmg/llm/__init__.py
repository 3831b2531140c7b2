"""LLM backends behind one interface (``pmg.llm.base.LLM``); ``load_llm`` picks one from a spec."""

from __future__ import annotations

from pathlib import Path

from pmg.llm.base import LLM, ChatRequest

__all__ = ["LLM", "ChatRequest", "load_llm"]


def load_llm(spec: str = "smollm2", *, backend: str = "auto", threads: int = 2, model_name: str = "default",
             cache_dir: str | Path | None = None) -> LLM:
    """'smollm2', a model folder, a .gguf file, or an http(s) URL of an OpenAI-compatible server.

    backend: 'auto' (HTTP for URLs; llama.cpp through xllamacpp for GGUF files when it is installed;
    else transformers), 'xllamacpp', 'transformers', 'llamacpp' (llama-cpp-python) or 'openai'.
    cache_dir: where transformers keeps a GGUF file's dequantised weights (loads in seconds next time).
    """
    from pmg.errors import ModelLoadError
    from pmg.registry import resolve_llm

    target = resolve_llm(spec)
    if backend not in ("auto", "xllamacpp", "transformers", "llamacpp", "openai"):
        raise ModelLoadError(f"unknown LLM backend {backend!r} (auto, xllamacpp, transformers, llamacpp, openai)")
    if isinstance(target, str) or backend == "openai":
        from pmg.llm.openai_http import OpenAIChatLLM

        return OpenAIChatLLM(str(target), model=model_name)
    if backend == "llamacpp":
        from pmg.llm.llamacpp import LlamaCppLLM

        return LlamaCppLLM(target, n_threads=threads)
    name = spec if spec == "smollm2" else Path(target).name
    if backend == "xllamacpp" or (backend == "auto" and Path(target).suffix == ".gguf" and _has("xllamacpp")):
        # in a process of its own: beside torch in one process llama.cpp decodes at half speed (process.py)
        from pmg.llm.process import ProcessLLM

        return ProcessLLM(target, n_threads=threads, name=name)
    from pmg.llm.transformers_llm import TransformersLLM

    return TransformersLLM(target, name=name, cache_dir=cache_dir)


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None
