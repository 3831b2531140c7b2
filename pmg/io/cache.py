"""A small content-addressed JSON cache on disk (keywords, item descriptions).

Keys are SHA-256 hashes of everything that determines the value (behaviours, prompt version, model
name), so a returning user costs no LLM call and a changed prompt never returns stale keywords.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

__all__ = ["JsonCache", "cache_key"]


def cache_key(*parts: Any) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


class JsonCache:
    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def _path(self, namespace: str, key: str) -> Path:
        return self.folder / namespace / key[:2] / f"{key}.json"

    def get(self, namespace: str, key: str) -> Any | None:
        p = self._path(namespace, key)
        try:
            return json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            return None

    def put(self, namespace: str, key: str, value: Any) -> None:
        p = self._path(namespace, key)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")  # threads never share a temp file
        tmp.write_text(json.dumps(value, ensure_ascii=False, indent=1))
        os.replace(tmp, p)  # atomic: a reader never sees half a file
