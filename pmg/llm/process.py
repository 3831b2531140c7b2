"""llama.cpp in a process of its own (the default for GGUF files).

Why: xllamacpp's ggml runs its threads through OpenMP, and in a process where torch has run a
parallel region the two share torch's ``libgomp``; from then on llama.cpp decodes at about half speed
(cat lover's keywords: 2.9 s in a fresh process, 4.9 s after one 2-thread torch matmul; spin counts
and wait policies do not change it, a process of its own does). The child imports only the LLM
backend, never torch; ``generate`` calls from several threads are served concurrently, each in a slot.

Protocol: length-prefixed pickles over the child's stdin/stdout (a plain ``subprocess``: no re-import
of the caller's ``__main__``, so scripts without a main guard work).
"""

from __future__ import annotations

import itertools
import os
import pickle
import struct
import subprocess
import sys
import threading
from concurrent.futures import Future
from pathlib import Path

from pmg.errors import LLMError, ModelLoadError
from pmg.llm.base import ChatRequest

__all__ = ["ProcessLLM"]


def _send(stream, obj, lock: threading.Lock) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    with lock:
        stream.write(struct.pack("<Q", len(data)) + data)
        stream.flush()


def _recv(stream):
    head = stream.read(8)
    if len(head) < 8:
        raise EOFError
    (n,) = struct.unpack("<Q", head)
    return pickle.loads(stream.read(n))


def _check_gguf(path: Path) -> None:
    """ModelLoadError unless ``path`` is a readable file that starts with GGUF's magic bytes."""
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise ModelLoadError(f"could not load {path}: {e.strerror or e}") from None
    if magic != b"GGUF":
        raise ModelLoadError(f"could not load {path}: not a GGUF file (it starts with {magic!r})")


class ProcessLLM:
    """An ``XLlamaCppLLM`` living in a child process; same ``generate`` and ``name``."""

    supports_json_schema = True

    def __init__(self, gguf: str | Path, n_threads: int = 2, name: str | None = None, n_parallel: int = 2):
        _check_gguf(Path(gguf))  # a file that is no GGUF is refused now, not on the first request
        args = {"gguf": str(gguf), "n_threads": int(n_threads), "name": name, "n_parallel": int(n_parallel)}
        env = dict(os.environ, OMP_NUM_THREADS=str(int(n_threads)))
        self._proc = subprocess.Popen([sys.executable, "-m", "pmg.llm.process"], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, env=env)
        self._send_lock = threading.Lock()
        _send(self._proc.stdin, args, self._send_lock)
        # the child loads the model while this process loads the others: the first generate() waits
        self.name = f"{name or Path(gguf).name}:llama.cpp"  # XLlamaCppLLM's name, known before it loads
        self._ready: Future = Future()
        self._ids = itertools.count()
        self._pending: dict[int, Future] = {}
        self._pending_lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, name="pmg-llm-reader", daemon=True)
        self._reader.start()

    def wait_ready(self) -> None:
        """Block until the child has loaded the model; ModelLoadError when it could not."""
        self._ready.result()

    def _read(self) -> None:
        try:
            status, value = _recv(self._proc.stdout)
        except (EOFError, OSError, ValueError):
            status, value = "error", "the llama.cpp process exited while loading the model"
        if status != "ready":
            self._proc.kill()
            self._ready.set_exception(ModelLoadError(value))
            return
        self._ready.set_result(value)
        try:
            while True:
                rid, ok, value = _recv(self._proc.stdout)
                with self._pending_lock:
                    fut = self._pending.pop(rid)
                fut.set_result(value) if ok else fut.set_exception(LLMError(value))
        except (EOFError, OSError, ValueError):
            with self._pending_lock:
                for fut in self._pending.values():
                    fut.set_exception(LLMError("the llama.cpp process exited"))
                self._pending.clear()

    def generate(self, requests: list[ChatRequest]) -> list[str]:
        self.wait_ready()
        rid, fut = next(self._ids), Future()
        with self._pending_lock:
            self._pending[rid] = fut
        try:
            _send(self._proc.stdin, (rid, list(requests)), self._send_lock)
        except (BrokenPipeError, OSError):
            raise LLMError("the llama.cpp process is not running") from None
        return fut.result()

    def close(self) -> None:
        if self._proc.poll() is None:
            try:
                self._proc.stdin.close()
            except OSError:
                pass
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


def _child() -> None:
    """The child: load the model, then answer each request on a thread of its own (slots decode together)."""
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing else may write to the protocol stream
    lock = threading.Lock()
    args = _recv(inp)
    try:
        from pmg.llm.xllamacpp_llm import XLlamaCppLLM

        llm = XLlamaCppLLM(args["gguf"], n_threads=args["n_threads"], name=args["name"], n_parallel=args["n_parallel"])
    except Exception as e:  # noqa: BLE001 - reported to the parent
        _send(out, ("error", str(e)), lock)
        return
    _send(out, ("ready", llm.name), lock)

    def answer(rid, requests):
        try:
            _send(out, (rid, True, llm.generate(requests)), lock)
        except Exception as e:  # noqa: BLE001 - reported to the caller
            _send(out, (rid, False, f"{type(e).__name__}: {e}"), lock)

    while True:
        try:
            rid, requests = _recv(inp)
        except EOFError:
            return
        threading.Thread(target=answer, args=(rid, requests), daemon=True).start()


if __name__ == "__main__":
    _child()
