"""Any OpenAI-compatible chat endpoint (vLLM, llama.cpp server, Ollama, ...), with the standard library."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request

from pmg.errors import LLMError
from pmg.llm.base import ChatRequest

__all__ = ["OpenAIChatLLM"]


class OpenAIChatLLM:
    """POST {base_url}/chat/completions at temperature 0. The answer prefix becomes an instruction,
    since chat servers cannot continue a half-written assistant turn portably."""

    def __init__(self, base_url: str, model: str = "default", api_key: str | None = None, timeout: float = 120):
        self.base_url = base_url.rstrip("/")
        if not self.base_url.endswith("/v1"):
            self.base_url += "/v1"
        self.model, self.timeout = model, timeout
        self.api_key = api_key or os.environ.get("OPENAI_API_KEY", "")
        self.name = f"openai:{model}@{self.base_url}"

    def _one(self, req: ChatRequest) -> str:
        user = req.user + (f'\nStart your answer with "{req.prefix}"' if req.prefix else "")
        body = {
            "model": self.model,
            "messages": ([{"role": "system", "content": req.system}] if req.system else []) + [{"role": "user", "content": user}],
            "temperature": 0,
            "max_tokens": req.max_new_tokens,
        }
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        http = urllib.request.Request(f"{self.base_url}/chat/completions", json.dumps(body).encode(), headers)
        try:
            with urllib.request.urlopen(http, timeout=self.timeout) as r:
                data = json.loads(r.read())
        except (urllib.error.URLError, TimeoutError, json.JSONDecodeError) as e:
            raise LLMError(f"LLM endpoint {self.base_url} failed: {e}") from None
        try:
            text = data["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise LLMError(f"LLM endpoint {self.base_url} answered without choices: {str(data)[:200]}") from None
        text = text.strip()
        if req.prefix and text.lower().startswith(req.prefix.lower()):
            text = text[len(req.prefix):]
        return text.strip()

    def generate(self, requests: list[ChatRequest]) -> list[str]:
        return [self._one(r) for r in requests]
