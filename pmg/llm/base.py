"""One interface for every language-model backend.

A request is a chat (system principle + user question) plus an optional assistant *prefix* that the
answer continues ("The keywords are:"), as in the paper's prompts. Backends that can continue a
prefix (transformers, llama.cpp) do; chat-only HTTP servers get the prefix as an instruction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

__all__ = ["ChatRequest", "LLM", "render_plain"]


@dataclass(frozen=True)
class ChatRequest:
    system: str
    user: str
    prefix: str = ""
    max_new_tokens: int = 64
    # a JSON schema the answer must follow, for backends that constrain decoding (llama.cpp's
    # grammars, OpenAI-compatible ``response_format``); others ignore it and are parsed as free text
    json_schema: dict | None = field(default=None, hash=False)


@runtime_checkable
class LLM(Protocol):
    name: str  # identifies the model in caches and manifests

    def generate(self, requests: list[ChatRequest]) -> list[str]:
        """Greedy (deterministic) completions, one per request, without the prefix."""
        ...


def render_plain(req: ChatRequest) -> str:
    """The paper's '### Human / ### Assistant' format, for models without a chat template."""
    head = f"### Principle: {req.system}\n" if req.system else ""
    return f"{head}### Human: {req.user}\n### Assistant: {req.prefix}"
