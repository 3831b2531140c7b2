"""Preference and target keywords from an LLM (paper section 3.2.2).

One LLM call per attribute (batched), parsed, merged, de-duplicated and ranked to the top 10
preference keywords; 5 target keywords from the target item, or for emoticons from the message.
Results are cached on disk, keyed by the behaviours, the prompt version and the model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from pmg.behaviours.schema import Scenario, UserBehaviours
from pmg.behaviours.to_text import ITEM_TEXT_LABELS, SUMMARY_INPUT_CHARS, ItemDescriber, clean_field, image_caption, without_labels
from pmg.io.cache import JsonCache, cache_key
from pmg.keywords.categories import shared_theme_words
from pmg.keywords.ground import KeywordGrounder, content_words
from pmg.keywords.moods import MOOD_WORDS, WORD_TO_MOOD, detect_mood, mood_of_keywords
from pmg.keywords.parse import (attribute_keywords, drop_field_labels, frequent_phrases, normalize_keyword,
                                parse_answer, rank_keywords)
from pmg.keywords.templates import PromptSet, load_prompt_set
from pmg.llm.base import LLM, ChatRequest
from pmg.llm.grammar import phrase_list_schema

__all__ = ["KeywordResult", "KeywordExtractor", "ALGORITHM_VERSION", "build_extractor"]

# bump when parsing or ranking changes, so cached keywords made the old way are not served
ALGORITHM_VERSION = 16


def keyword_schema(min_items: int, max_items: int) -> dict:
    """The JSON schema backends that constrain decoding follow: a bounded list of short lowercase phrases
    (llama.cpp decodes it with a whitespace-free grammar, ``pmg.llm.grammar``)."""
    return phrase_list_schema(min_items, max_items)


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


# message words that never describe an emoticon on their own
_FILLER = {"today", "day", "now", "really", "so", "very", "much", "just", "again", "ever", "get", "got", "thing",
           "feel", "feeling", "felt", "bit", "little", "kind", "lot"}


class CachedLLM:
    """Raw answers cached by model and exact request: a change to parsing or ranking re-ranks
    cached answers instead of asking the LLM again."""

    def __init__(self, llm: LLM, cache: JsonCache | None):
        self.llm, self.cache, self.name, self.calls = llm, cache, llm.name, 0

    def generate(self, requests: list[ChatRequest]) -> list[str]:
        if self.cache is None:
            self.calls += len(requests)
            return self.llm.generate(requests)
        keys = [cache_key("llm-answer", self.llm.name, r.system, r.user, r.prefix, r.max_new_tokens,
                          *([r.json_schema] if r.json_schema else [])) for r in requests]
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
        grounder: KeywordGrounder | None = None,
        structured: bool = True,
    ):
        self.llm, self.prompts, self.captioner, self.cache = llm, prompts, captioner, cache
        self.grounder = grounder
        # JSON-constrained answers where the backend can constrain decoding; free text otherwise
        self.structured = structured and bool(getattr(llm, "supports_json_schema", False))
        self.n_items, self.n_conversations = n_items, n_conversations
        self.top_k, self.n_target, self.max_new_tokens = top_k, n_target, max_new_tokens

    def _prompts_for(self, user: UserBehaviours) -> PromptSet:
        return self.prompts or load_prompt_set(user.scenario.value)

    def __call__(self, user: UserBehaviours) -> KeywordResult:
        return self.batch([user])[0]

    def _key(self, recent: UserBehaviours, prompts: PromptSet) -> str:
        import hashlib

        images = [hashlib.sha256(it.image_bytes()).hexdigest() if it.has_image else None for it in recent.history]
        return cache_key(
            "keywords", ALGORITHM_VERSION, recent.model_dump(mode="json", exclude={"user_id"}), images, prompts.version, self.llm.name,
            getattr(self.captioner, "name", None), self.top_k, self.n_target, self.max_new_tokens,
            self.structured, self.grounder is not None,
        )

    def batch(self, users: list[UserBehaviours], progress: bool = False) -> list[KeywordResult]:
        """Keywords for many users: every uncached user's prompts go to the backend in one call
        (parallel slots for llama.cpp, batches for transformers). Results equal one-by-one calls."""
        results: list[KeywordResult | None] = [None] * len(users)
        plans = []
        for i, user in enumerate(users):
            prompts = self._prompts_for(user)
            recent = user.recent(self.n_items, self.n_conversations)
            key = self._key(recent, prompts)
            if self.cache and (hit := self.cache.get("keywords", key)) is not None:
                results[i] = KeywordResult(**{**hit, "cached": True, "llm_calls": 0})
                continue
            plans.append((i, key, self._plan(user, recent, prompts, CachedLLM(self.llm, self.cache))))
        # one user's prompts per call (llama.cpp's prompt cache serves what they share; transformers
        # batches them); several users at once where the backend decodes in parallel (llama.cpp slots)
        def answer(plan):
            return plan["llm"].generate(plan["requests"])

        workers = min(len(plans), getattr(self.llm, "n_parallel", 1))
        bar = None
        if progress and plans:
            from tqdm import tqdm

            bar = tqdm(total=len(plans), desc="keywords", unit="user")

        def answer_and_count(plan):
            out = answer(plan)
            if bar is not None:
                bar.update(1)
            return out

        if workers > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(workers) as pool:
                answers = list(pool.map(answer_and_count, [p for _, _, p in plans]))
        else:
            answers = [answer_and_count(p) for _, _, p in plans]
        if bar is not None:
            bar.close()
        for (i, key, plan), ans in zip(plans, answers):
            res = self._finish(users[i], plan, ans, plan["llm"].calls)
            if self.cache:
                self.cache.put("keywords", key, res.to_dict())
            results[i] = res
        return results  # type: ignore[return-value]

    def _plan(self, user: UserBehaviours, recent: UserBehaviours, prompts: PromptSet, llm: "CachedLLM") -> dict:
        """The behaviours as text and the LLM requests for one user."""
        found = user.instruction_fields()
        warnings = [f"{f}: instruction-like text {p!r} treated as data (keywords must be grounded in the behaviours)"
                    for f, p in found]
        describer = ItemDescriber(llm, prompts, self.captioner, self.cache)
        history = describer.describe(recent.history) if recent.history else []
        long = [i for i, it in enumerate(recent.history) if len(it.text) > SUMMARY_INPUT_CHARS]
        if long:
            warnings.append(f"history items {long}: only the first {SUMMARY_INPUT_CHARS} characters were summarised")
        convs = [clean_field(c) for c in recent.conversations]
        reqs, names = [], []
        if history:
            hist_text = "\n".join(f"{i + 1}. {h}" for i, h in enumerate(history))
            conv_text = " / ".join(f'"{c}"' for c in convs)
            for a in prompts.attributes:
                reqs.append(self._request(prompts, prompts.preference_prompt(a, hist_text, conv_text),
                                          prompts.preference_prefix, keyword_schema(3, 6)))
                names.append(a)
        else:
            warnings.append("empty history: generating without personalisation (no preference keywords)")
        reqs.append(self._target_request(user, prompts))
        names.append("__target__")
        return {"requests": reqs, "names": names, "history": history, "convs": convs, "recent": recent,
                "prompts": prompts, "warnings": warnings, "llm": llm}

    def _finish(self, user: UserBehaviours, plan: dict, answers: list[str], calls: int) -> KeywordResult:
        """Parse, merge, ground and rank one user's answers."""
        prompts, recent, history, convs = plan["prompts"], plan["recent"], plan["history"], plan["convs"]
        warnings = list(plan["warnings"])
        raw, per_attr = {}, {}
        for n, ans in zip(plan["names"], answers):
            raw[n] = ans
            per_attr[n] = parse_answer(ans)
        target_kws = per_attr.pop("__target__")
        banned = [it.title for it in recent.history] if prompts.drop_item_titles else []
        evidence = history + convs
        preference = self._preference(per_attr, recent, evidence, banned, prompts)
        target_evidence = [user.target.message or ""] + ([user.target.item.title, user.target.item.text] if user.target.item else [])
        target_lists = [target_kws]
        if user.target.item is not None:  # the item's own title and attributes: one more, grounded, vote
            target_lists.append(self._fallback_target(user))
            target_evidence += list(user.target.item.attributes.values())
        target = rank_keywords(target_lists, evidence=target_evidence, examples=prompts.examples, top_k=None)
        target = self._ground_target(user, target, [e for e in target_evidence if e], prompts)
        fields = [it.attributes for it in recent.history] + ([user.target.item.attributes] if user.target.item else [])
        target = drop_field_labels(target, fields)[: self.n_target]
        if not target:
            target = self._fallback_target(user)
            warnings.append(f"the LLM gave no usable target keywords ({raw['__target__']!r}); used the target's own words")
        if history and not preference:
            warnings.append("the LLM gave no usable preference keywords; generating without them")
        elif history and not set(map(str.lower, preference)) & {k.lower() for a, ks in per_attr.items()
                                                                 if not a.startswith("__") for k in ks}:
            warnings.append("none of the LLM's preference keywords is grounded in the behaviours; "
                            "used the items' shared words and attributes")
        if target and not {k.lower() for k in target} & {k.lower() for k in target_kws}:
            warnings.append(f"the LLM's target keywords ({raw['__target__'][:80]!r}) are not grounded in the target; "
                            "used its own words and mood")
        return KeywordResult(
            preference=preference, target=target, per_attribute=per_attr, raw_answers=raw,
            behaviour_text=history, conversations=convs, prompt_version=prompts.version,
            model=self.llm.name, llm_calls=calls, warnings=warnings,
        )

    def _preference(self, per_attr: dict, recent: UserBehaviours, evidence: list[str], banned: list[str],
                    prompts: PromptSet) -> list[str]:
        """Merge the per-attribute answers, keep what the behaviours support, rank, top k."""
        from_attributes = attribute_keywords([it.attributes for it in recent.history])
        if self.grounder is not None:  # what the items are (``shared_theme_words``) is one more vote
            titles = [clean_field(it.title) for it in recent.history]  # titles: not "genres: ..." text
            captions = [c for c in map(image_caption, evidence[: len(recent.history)]) if c]
            evidence = [without_labels(e) for e in evidence]
            texts = [clean_field(it.text) for it in recent.history]
            shared = shared_theme_words(titles, texts, exclude=_echo_words(prompts))
            shared |= frequent_phrases(captions)  # what most item images show: an art style the captioner names
            from_attributes = {**shared, **from_attributes}
        if from_attributes:
            per_attr["__item_attributes__"] = list(from_attributes)
        preference = rank_keywords(
            [kws for a, kws in per_attr.items() if a != "__target__"], evidence=evidence,
            examples=prompts.examples, banned=banned, support=from_attributes, top_k=None,
        )
        if self.grounder is not None:
            # every keyword supported by the behaviours: with 3+ items, by 2 items (text planted in one item,
            # or in one item and the conversation, cannot steer the image on its own)
            items = evidence[: len(recent.history)]
            support_in, need = (items, 2) if len(items) >= 3 else (evidence, 1)
            grounded = set(self.grounder.keep(preference, support_in, min_support=need, exclude=_echo_words(prompts)))
            preference = [self.grounder.surface(k, evidence) for k in preference if k in grounded or k in from_attributes]
            preference = list(dict.fromkeys(preference))
        return drop_field_labels(preference, [it.attributes for it in recent.history])[: self.top_k]

    def _request(self, prompts: PromptSet, text: str, prefix: str, schema: dict) -> ChatRequest:
        if not self.structured:
            return ChatRequest(prompts.principle, text, prefix, self.max_new_tokens)
        return ChatRequest(prompts.principle, text + " Answer with a JSON list of keywords, each one to three "
                           "English words separated by spaces.", "", self.max_new_tokens, json_schema=schema)

    def _target_request(self, user: UserBehaviours, prompts: PromptSet) -> ChatRequest:
        if user.scenario == Scenario.emoticon and user.target.message:
            text = prompts.target_prompt(message=clean_field(user.target.message))
        else:
            it = user.target.item
            text = prompts.target_prompt(title=clean_field(it.title), text=clean_field(it.text[:SUMMARY_INPUT_CHARS]))
        return self._request(prompts, text, prompts.target_prefix, keyword_schema(1, self.n_target))

    def _ground_target(self, user: UserBehaviours, target: list[str], evidence: list[str], prompts: PromptSet) -> list[str]:
        """Target keywords the target supports; for a chat message, led by its mood and filled up
        with that mood's words (a small LLM often answers "today, day, so")."""
        if self.grounder is None:
            return target
        kept = self.grounder.keep(target, evidence, exclude=_echo_words(prompts), threshold=self.grounder.target_threshold)
        if not (user.scenario == Scenario.emoticon and user.target.message and self.grounder.embed is not None):
            return kept
        # the mood the message's own words or the LLM's grounded keywords name, else the nearest prototype
        import re

        words = re.findall(r"[a-z][a-z'-]*", user.target.message.lower())
        mood = mood_of_keywords(words + kept) or detect_mood(user.target.message, self.grounder.embed)
        if mood is None:
            return kept
        moody = [k for k in kept if any(WORD_TO_MOOD.get(w) == mood for w in content_words(k)) or WORD_TO_MOOD.get(k) == mood]
        rest = [k for k in kept if k not in moody and normalize_keyword(k) not in _FILLER]  # "today's" too
        out = list(dict.fromkeys([mood] + moody + rest))
        fill = [w for w in MOOD_WORDS[mood] if w not in out]  # the mood's own words up to n_target
        return out + fill[: max(0, self.n_target - len(out))]

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


def _echo_words(prompts: PromptSet) -> set[str]:
    """Words that say nothing of the user when echoed: the prompts' own and the labels of an item's text
    ("image" of "image: caption")."""
    return prompts.words() | ITEM_TEXT_LABELS


def build_extractor(llm: str = "smollm2", *, backend: str = "auto", threads: int = 2, model_name: str = "default",
                    model_cache_dir=None, cache_dir=None, captioner=None,
                    ground: bool = True, structured: bool = True) -> KeywordExtractor:
    """The keyword stage from names: an LLM backend, an optional disk cache, MiniLM grounding.

    Args:
        llm: 'smollm2', a model folder, a .gguf file or an OpenAI-compatible URL (``pmg.llm.load_llm``).
        model_cache_dir: where transformers keeps dequantised GGUF weights.
        cache_dir: keyword and LLM-answer cache folder, or None for no cache.
        ground: keep only keywords the behaviours support (``pmg.keywords.ground``).
        structured: JSON-constrained answers where the backend supports them.
    """
    from pmg.llm import load_llm

    llm_obj = load_llm(llm, backend=backend, threads=threads, model_name=model_name, cache_dir=model_cache_dir)
    grounder = None
    if ground:
        from pmg.keywords.ground import SentenceEmbedder

        grounder = KeywordGrounder(SentenceEmbedder())
    return KeywordExtractor(llm_obj, captioner=captioner, cache=JsonCache(cache_dir) if cache_dir else None,
                            grounder=grounder, structured=structured)
