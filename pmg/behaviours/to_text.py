"""Behaviours become text (paper section 3.2.1): long item text is summarised by the LLM, item images
are captioned, conversations are kept. Descriptions are cached per item."""

from __future__ import annotations

import io
import re

from PIL import Image

from pmg.behaviours.schema import Item
from pmg.io.cache import JsonCache, cache_key
from pmg.keywords.templates import PromptSet
from pmg.llm.base import LLM, ChatRequest

__all__ = ["ItemDescriber", "clean_field", "image_caption", "SUMMARY_THRESHOLD"]

SUMMARY_THRESHOLD = 300  # characters; longer item text is summarised first
SUMMARY_INPUT_CHARS = 2_000  # what the small LLM is shown of a very long text


# never data: chat-template and instruction markup (ChatML with its role, Llama 2, end-of-text) and
# terminal control sequences (ANSI escapes, other control characters)
_MARKUP = re.compile(
    r"<\|[^|<>\n]{0,40}\|>(?:[ \t]*(?:system|user|assistant)\b)?|</?s>|\[/?INST\]|<</?SYS>>"
    r"|\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|[\x00-\x08\x0b-\x1f\x7f]",
    re.IGNORECASE)


def clean_field(text: str) -> str:
    """One line of words: no quotes that would close the prompt's own quoting, no tag that would close
    its ``<behaviours>`` data block, no chat-template markup, no terminal control sequences."""
    text = re.sub(r"</?\s*behaviours\s*>", " ", text, flags=re.IGNORECASE)
    text = _MARKUP.sub(" ", text)
    return re.sub(r"\s+", " ", text.replace('"', "'")).strip()


_SEP, _IMAGE = " | ", "image:"  # an item as text: "title | text | key: value | image: caption"
ITEM_TEXT_LABELS = frozenset({"image"})  # the labels that text adds to every item: no keyword of a user


def without_labels(described: str) -> str:
    """An ``ItemDescriber`` text without the labels it adds ("image:"): evidence of what the user did,
    in which the label itself supports no keyword."""
    return described.replace(_SEP + _IMAGE, _SEP)


def image_caption(described: str) -> str | None:
    """The caption part of an ``ItemDescriber`` text, or None when the item had no captioned image."""
    parts = described.split(_SEP)
    return next((p[len(_IMAGE):].strip() for p in parts[1:] if p.startswith(_IMAGE)), None)


class ItemDescriber:
    """Item -> one line of text: title, short text (or its LLM summary), attributes, image caption."""

    def __init__(self, llm: LLM | None, prompts: PromptSet, captioner=None, cache: JsonCache | None = None):
        self.llm, self.prompts, self.captioner, self.cache = llm, prompts, captioner, cache

    def _key(self, item: Item) -> str:
        img = item.image_bytes() or b""
        import hashlib

        return cache_key(
            "item", item.title, item.text, item.attributes, hashlib.sha256(img).hexdigest(),
            self.prompts.version, getattr(self.llm, "name", None), getattr(self.captioner, "name", None),
        )

    def describe(self, items: list[Item]) -> list[str]:
        keys = [self._key(it) for it in items]
        out: list[str | None] = [self.cache.get("items", k) if self.cache else None for k in keys]
        todo = [i for i, o in enumerate(out) if o is None]
        if not todo:
            return out  # type: ignore[return-value]
        long = [i for i in todo if len(items[i].text) > SUMMARY_THRESHOLD]
        summaries = {}
        if long and self.llm is not None:
            reqs = [
                ChatRequest(
                    system="",
                    user=self.prompts.summary_prompt(clean_field(items[i].title), clean_field(items[i].text[:SUMMARY_INPUT_CHARS])),
                    prefix=self.prompts.summary_prefix,
                    max_new_tokens=48,
                )
                for i in long
            ]
            for i, s in zip(long, self.llm.generate(reqs)):
                summaries[i] = f"{self.prompts.summary_prefix} {clean_field(s)}".strip()
        captions = {}
        with_img = [i for i in todo if items[i].has_image and self.captioner is not None]
        if with_img:
            imgs = [Image.open(io.BytesIO(items[i].image_bytes())).convert("RGB") for i in with_img]
            captions = dict(zip(with_img, self.captioner.caption(imgs)))
        for i in todo:
            it = items[i]
            parts = [clean_field(it.title)]
            text = summaries.get(i) or clean_field(it.text[:SUMMARY_THRESHOLD])
            if text:
                parts.append(text)
            if it.attributes:
                parts.append("; ".join(f"{clean_field(k)}: {clean_field(v)}" for k, v in it.attributes.items()))
            if i in captions:
                parts.append(f"{_IMAGE} {clean_field(captions[i])}")
            out[i] = _SEP.join(parts)
            if self.cache:
                self.cache.put("items", keys[i], out[i])
        return out  # type: ignore[return-value]
