"""llama.cpp through ``xllamacpp`` (prebuilt CPU wheels, no compiler): the default for GGUF files.

llama.cpp's own server runs in-process (``xllamacpp.Server``): requests are OpenAI-style chat dicts
and a JSON schema in the request constrains decoding to it (llama.cpp compiles it to a grammar). The
assistant prefix ("The keywords are: 1.") is sent as a final assistant message, which llama.cpp
continues. PMG's keyword lists are decoded with a compact grammar (``pmg.llm.grammar``).

Speed comes from the prompt cache: the requests of one ``generate`` call run one after another in
one slot, and llama.cpp re-uses the evaluated tokens they share (the keyword prompts put the user's
behaviours first and the attribute last, so only the first prompt is evaluated in full). Several
threads calling ``generate`` at once (``KeywordExtractor.batch``) each get a slot of their own
(``n_parallel``) and are decoded together.
"""

from __future__ import annotations

import os
import queue
import threading
from pathlib import Path

from pmg.errors import ModelLoadError
from pmg.llm.base import ChatRequest
from pmg.llm.grammar import gbnf_for_schema

__all__ = ["XLlamaCppLLM"]


class XLlamaCppLLM:
    """Greedy decoding with llama.cpp; ``generate`` sends its requests to ``n_parallel`` slots at once.

    Args:
        gguf: a ``.gguf`` model file.
        n_threads: CPU threads for decoding (``--threads``).
        n_ctx: context per slot; the server gets ``n_ctx * n_parallel``.
        n_parallel: requests decoded together.
    """

    supports_json_schema = True

    def __init__(self, gguf: str | Path, n_threads: int = 2, n_ctx: int = 4096, n_parallel: int = 2,
                 name: str | None = None):
        try:
            import xllamacpp
        except ImportError:
            raise ModelLoadError("the xllamacpp backend needs `pip install xllamacpp`") from None
        gguf = Path(gguf)
        if not gguf.is_file():
            raise ModelLoadError(f"GGUF file not found: {gguf}")
        p = xllamacpp.CommonParams()
        p.model.path = str(gguf)
        p.n_parallel = max(1, int(n_parallel))
        p.n_ctx = n_ctx * p.n_parallel
        p.cpuparams.n_threads = p.cpuparams_batch.n_threads = max(1, int(n_threads))
        # ggml's threads spin-wait for work by default (poll 50): beside torch in one process on two
        # cores they steal the cores from the U-Net (a 0.8 s grid took 1.25 s). 0: they sleep.
        p.cpuparams.poll = p.cpuparams_batch.poll = int(os.environ.get("PMG_LLAMA_POLL", "0"))
        p.sampling.seed = 0
        p.warmup = False
        p.verbosity = -1
        p.log_json = False
        p.endpoint_metrics = False
        self.n_parallel = p.n_parallel
        self._free_slots: "queue.LifoQueue[int]" = queue.LifoQueue()  # slot 0 first: its prompt cache stays warm
        for i in reversed(range(self.n_parallel)):
            self._free_slots.put(i)
        with _quiet_stderr(os.environ.get("PMG_LLM_VERBOSE") != "1"):
            try:
                self.server = xllamacpp.Server(p)
            except Exception as e:  # noqa: BLE001 - the binding raises plain exceptions
                raise ModelLoadError(f"llama.cpp could not load {gguf}: {e}") from None
        self.name = f"{name or gguf.name}:llama.cpp"  # caches and manifests tell the backends apart

    def _body(self, req: ChatRequest) -> dict:
        msgs = ([{"role": "system", "content": req.system}] if req.system else []) + [{"role": "user", "content": req.user}]
        if req.prefix:
            msgs.append({"role": "assistant", "content": req.prefix})
        body = {"messages": msgs, "max_tokens": req.max_new_tokens, "temperature": 0.0, "top_k": 1,
                "repeat_penalty": 1.1, "seed": 0, "cache_prompt": True}
        if (grammar := gbnf_for_schema(req.json_schema)) is not None:
            body["grammar"] = grammar  # no whitespace between tokens: fewer tokens to decode
        elif req.json_schema is not None:
            body["json_schema"] = req.json_schema
        return body

    def _one(self, req: ChatRequest, slot: int) -> str:
        res = self.server.handle_chat_completions({**self._body(req), "id_slot": slot})
        if not isinstance(res, dict) or "choices" not in res:
            raise ModelLoadError(f"llama.cpp answered an error: {str(res)[:200]}")
        text = (res["choices"][0]["message"].get("content") or "").strip()
        if req.prefix and text.startswith(req.prefix.strip()):  # the continued prefill comes back whole
            text = text[len(req.prefix.strip()):]
        return text.strip()

    def generate(self, requests: list[ChatRequest]) -> list[str]:
        """In order, in one slot (its prompt cache serves the shared beginnings); a call from another
        thread meanwhile takes another slot, or waits for one."""
        slot = self._free_slots.get()
        try:
            return [self._one(r, slot) for r in requests]
        finally:
            self._free_slots.put(slot)


class _quiet_stderr:
    """llama.cpp logs model loading to fd 2 from C++; hide it unless asked (PMG_LLM_VERBOSE=1)."""

    _lock = threading.Lock()

    def __init__(self, active: bool):
        self.active = active

    def __enter__(self):
        if self.active:
            self._lock.acquire()
            self.saved = os.dup(2)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            os.close(devnull)

    def __exit__(self, *exc):
        if self.active:
            os.dup2(self.saved, 2)
            os.close(self.saved)
            self._lock.release()
