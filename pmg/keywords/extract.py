"""Preference and target keywords from an LLM (paper section 3.2.2).

One LLM call per attribute (batched), parsed, merged, de-duplicated and ranked to the top 10
preference keywords; 5 target keywords from the target item, or for emoticons from the message.
Results are cached on disk, keyed by the behaviours, the prompt version and the model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from pmg.behaviours.schema import Scenario, UserBehaviours
from pmg.behaviours.to_text import SUMMARY_INPUT_CHARS, ItemDescriber, clean_field
from pmg.errors import InputError
from pmg.io.cache import JsonCache, cache_key
from pmg.keywords.parse import attribute_keywords, parse_keywords, rank_keywords
from pmg.keywords.templates import PromptSet, load_prompt_set
from pmg.llm.base import LLM, ChatRequest

__all__ = ["KeywordResult", "KeywordExtractor", "ALGORITHM_VERSION"]

# bump when parsing or ranking changes, so cached keywords made the old way are not served
ALGORITHM_VERSION = 5


@dataclass
class KeywordResult:
    preference: list[str]
    target: list[str]
    per_attribute: dict[str, list[str]] = field(default_factory=dict)
    raw_answers: dict[str, str] = field(default_factory=dict)
    behaviour_text: list[str] = field(default_factory=list)
    conversations: list[str] = field(default_factory=list)
    prompt_version: str = ""
    model: str = ""
    cached: bool = False
    llm_calls: int = 0
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


class CachedLLM:
    """Raw answers cached by model and exact request: a change to parsing or ranking re-ranks
    cached answers instead of asking the LLM again."""

    def __init__(self, llm: LLM, cache: JsonCache | None):
        self.llm, self.cache, self.name, self.calls = llm, cache, llm.name, 0

    def generate(self, requests: list[ChatRequest]) -> list[str]:
        if self.cache is None:
            self.calls += len(requests)
            return self.llm.generate(requests)
        keys = [cache_key("llm-answer", self.llm.name, r.system, r.user, r.prefix, r.max_new_tokens) for r in requests]
        out = [self.cache.get("llm-answers", k) for k in keys]
        todo = [i for i, o in enumerate(out) if o is None]
        if todo:
            self.calls += len(todo)
            for i, ans in zip(todo, self.llm.generate([requests[i] for i in todo])):
                out[i] = ans
                self.cache.put("llm-answers", keys[i], ans)
        return out


class KeywordExtractor:
    def __init__(
        self,
        llm: LLM,
        prompts: PromptSet | None = None,
        *,
        captioner=None,
        cache: JsonCache | None = None,
        n_items: int = 10,
        n_conversations: int = 1,
        top_k: int = 10,
        n_target: int = 5,
        max_new_tokens: int = 48,
        allow_instructions: bool = False,
    ):
        self.llm, self.prompts, self.captioner, self.cache = llm, prompts, captioner, cache
        self.n_items, self.n_conversations = n_items, n_conversations
        self.top_k, self.n_target, self.max_new_tokens = top_k, n_target, max_new_tokens
        self.allow_instructions = allow_instructions

    def _prompts_for(self, user: UserBehaviours) -> PromptSet:
        return self.prompts or load_prompt_set(user.scenario.value)

    def __call__(self, user: UserBehaviours) -> KeywordResult:
        found = user.instruction_fields()
        if found and not self.allow_instructions:
            where = "; ".join(f"{f} ({p!r})" for f, p in found[:5])
            raise InputError(
                f"text that tries to instruct the LLM was found in: {where}. "
                "Remove it, or pass --allow-instructions to treat it as plain item text."
            )
        prompts = self._prompts_for(user)
        recent = user.recent(self.n_items, self.n_conversations)
        key = cache_key(
            "keywords", ALGORITHM_VERSION, recent.model_dump(mode="json", exclude={"user_id"}), prompts.version, self.llm.name,
            getattr(self.captioner, "name", None), self.top_k, self.n_target, self.max_new_tokens,
        )
        if self.cache and (hit := self.cache.get("keywords", key)) is not None:
            return KeywordResult(**{**hit, "cached": True, "llm_calls": 0})

        warnings = [f"{f}: instruction-like text {p!r} kept as plain text" for f, p in found]
        llm = CachedLLM(self.llm, self.cache)
        describer = ItemDescriber(llm, prompts, self.captioner, self.cache)
        history = describer.describe(recent.history) if recent.history else []
        long = [i for i, it in enumerate(recent.history) if len(it.text) > SUMMARY_INPUT_CHARS]
        if long:
            warnings.append(f"history items {long}: only the first {SUMMARY_INPUT_CHARS} characters were summarised")
        convs = [clean_field(c) for c in recent.conversations]
        raw, per_attr = {}, {}
        reqs, names = [], []
        if history:
            hist_text = "\n".join(f"{i + 1}. {h}" for i, h in enumerate(history))
            conv_text = " / ".join(f'"{c}"' for c in convs)
            for a in prompts.attributes:
                reqs.append(ChatRequest(prompts.principle, prompts.preference_prompt(a, hist_text, conv_text),
                                        prompts.preference_prefix, self.max_new_tokens))
                names.append(a)
        else:
            warnings.append("empty history: generating without personalisation (no preference keywords)")
        reqs.append(self._target_request(user, prompts))
        names.append("__target__")
        answers = llm.generate(reqs)
        calls = llm.calls
        for n, ans in zip(names, answers):
            raw[n] = ans
            per_attr[n] = parse_keywords(ans)
        target_kws = per_attr.pop("__target__")
        banned = [it.title for it in recent.history] if prompts.drop_item_titles else []
        evidence = history + convs
        from_attributes = attribute_keywords([it.attributes for it in recent.history])
        if from_attributes:
            per_attr["__item_attributes__"] = list(from_attributes)
        preference = rank_keywords(
            [kws for a, kws in per_attr.items() if a != "__target__"], evidence=evidence,
            examples=prompts.examples, banned=banned, support=from_attributes, top_k=self.top_k,
        )
        target_evidence = [user.target.message or ""] + ([user.target.item.title, user.target.item.text] if user.target.item else [])
        target_lists = [target_kws]
        if user.target.item is not None:  # the item's own title and attributes: one more, grounded, vote
            target_lists.append(self._fallback_target(user))
            target_evidence += list(user.target.item.attributes.values())
        target = rank_keywords(target_lists, evidence=target_evidence, examples=prompts.examples, top_k=self.n_target)
        if not target:
            target = self._fallback_target(user)
            warnings.append(f"the LLM gave no usable target keywords ({raw['__target__']!r}); used the target's own words")
        if history and not preference:
            warnings.append("the LLM gave no usable preference keywords; generating without them")
        result = KeywordResult(
            preference=preference, target=target, per_attribute=per_attr, raw_answers=raw,
            behaviour_text=history, conversations=convs, prompt_version=prompts.version,
            model=self.llm.name, llm_calls=calls, warnings=warnings,
        )
        if self.cache:
            self.cache.put("keywords", key, result.to_dict())
        return result

    def _target_request(self, user: UserBehaviours, prompts: PromptSet) -> ChatRequest:
        if user.scenario == Scenario.emoticon and user.target.message:
            text = prompts.target_prompt(message=clean_field(user.target.message))
        else:
            it = user.target.item
            text = prompts.target_prompt(title=clean_field(it.title), text=clean_field(it.text[:SUMMARY_INPUT_CHARS]))
        return ChatRequest(prompts.principle, text, prompts.target_prefix, self.max_new_tokens)

    def _fallback_target(self, user: UserBehaviours) -> list[str]:
        """The target's own words: the message, or the item's title (year dropped) and attribute values."""
        import re

        if user.target.message:
            return [clean_field(user.target.message)]
        it = user.target.item
        words = [re.sub(r"\s*\(\d{4}\)", "", clean_field(it.title))]
        for v in it.attributes.values():
            words += [w.strip().lower() for w in re.split(r"[|,;/]", v) if w.strip()]
        return list(dict.fromkeys(words))[: self.n_target]
