"""The whole PMG pipeline in a few lines.

    from pmg.api import PMG, GenerationConfig
    from pmg.behaviours.schema import load_user

    pmg = PMG.from_names()                      # SmolLM2 + each scenario's built-in models, offline
    result = pmg.generate(load_user("examples/users/cat_lover.json"), GenerationConfig(seed=0))
    result.best_image.save("best.png")

``PMG`` only wires components that are passed in (keyword extractor, generator pipeline, scorer);
``from_names`` builds them from names or local folders, 'auto' being each scenario's own
(``pmg.scenarios``).
"""

from __future__ import annotations

import dataclasses
import functools
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import torch
from PIL import Image

from pmg.behaviours.schema import UserBehaviours
from pmg.conditioning.weighting import DEFAULT_GRID
from pmg.config import OPTION_NAMES, GenerationConfig, check_noises
from pmg.errors import ConfigError
from pmg.generation.protocol import Generator
from pmg.keywords.extract import KeywordExtractor, KeywordResult
from pmg.lazy import Lazy
from pmg.scoring.select import select_best, similarity_scores, z_scores

if TYPE_CHECKING:
    from pmg.pictures.gallery import Gallery
    from pmg.scoring.scorers import Scorer
    from pmg.soft.embedder import SoftEmbedder

__all__ = ["GenerationConfig", "OPTION_NAMES", "Candidate", "PMGResult", "PMG", "ModelSpec", "default_cache_dir", "bundled_adapters",
           "build_captioner"]


def bundled_adapters(generator: str) -> dict[str, Path]:
    """scenario -> the soft-embedding adapter shipped with the built-in generator (``pmg.scenarios``)."""
    from pmg.scenarios import bundled_adapters as adapters

    return adapters(generator)


def build_captioner(captioner: str | None, scorer, scorer_name: str):
    """'tagger' (``scorer`` ranks the vocabulary of ``scorer_name``'s model folder), None / 'none', or a
    transformers image-to-text folder."""
    from pmg.captioning.base import TaggerCaptioner, TransformersCaptioner

    if captioner in (None, "none"):
        return None
    if captioner == "tagger":
        from pmg.captioning.vocabulary import vocabulary_for

        return TaggerCaptioner(scorer, vocabulary_for(scorer_name))
    return TransformersCaptioner(captioner)


def adapter_generator(folder: str | Path) -> str:
    """The generator a soft-embedding adapter folder was trained for (its ``soft_config.json``)."""
    import json

    from pmg.errors import ModelLoadError
    from pmg.soft.model import SOFT_CONFIG_NAME, SoftConfig

    path = Path(folder) / SOFT_CONFIG_NAME
    if not path.is_file():
        raise ModelLoadError(f"{folder}: not a soft-embedding adapter (no {SOFT_CONFIG_NAME})")
    try:
        return SoftConfig(**json.loads(path.read_text())).generator
    except (OSError, ValueError, TypeError) as e:
        raise ModelLoadError(f"{path}: {e}") from None


def generator_index(spec: str | Path) -> tuple[str, dict]:
    """A generator's name (the one ``load_generator`` gives it) and its ``model_index.json``, read without
    loading the model."""
    import json

    from pmg.registry import resolve_generator

    folder = resolve_generator(spec)
    try:
        index = json.loads((folder / "model_index.json").read_text())
    except (OSError, ValueError):
        index = {}
    return index.get("name") or folder.name, index


def soft_for_generator(soft: str | Path | None, generator: str | Path) -> str | Path | None:
    """``soft`` for one generator: an adapter folder applies only to the generator it was trained for;
    another generator gets its bundled adapter ('auto')."""
    if soft in (None, "none", "auto"):
        return soft
    return soft if adapter_generator(soft) == generator_index(generator)[0] else "auto"


def _models_to_load(generator: str, scorer: str, soft: str | Path | None, scenario: str) -> dict:
    """What ``PMG._with_models`` will load for a scenario, read from the model folders without loading them."""
    from pmg.conditioning.weighting import parse_grid

    name, index = generator_index(generator)
    grid = index.get("default_grid", DEFAULT_GRID)
    try:
        grid = [[float(wp), float(wt)] for wp, wt in (parse_grid(grid) if isinstance(grid, str) else grid)]
    except (ValueError, TypeError):
        grid = None  # the generator refuses it when it loads
    folder = bundled_adapters(generator).get(scenario) if soft == "auto" else None if soft in (None, "none") else soft
    return {"generator": name, "scorer": str(scorer), "soft": f"soft:{Path(folder).name}" if folder else None,
            "default_grid": grid}


def _index_gallery(folder: Path, scorer, cache_dir) -> "Gallery":
    from pmg.pictures.gallery import Gallery

    return Gallery.index(folder, scorer, cache_dir)


def default_cache_dir() -> Path:
    import os

    return Path(os.environ.get("PMG_CACHE_DIR", Path.home() / ".cache" / "pmg"))


@dataclass(frozen=True)
class ModelSpec:
    """Which models to load: the arguments of ``PMG.from_names`` as a picklable value. Calling it loads a
    ``PMG``, so a spec is what batch workers (processes, Ray actors) receive to load their own models once."""

    llm: str = "smollm2"
    generator: str = "auto"
    scorer: str = "auto"
    captioner: str | None = "tagger"
    llm_backend: str = "auto"
    llm_model_name: str = "default"
    scheduler: str | None = None
    cache_dir: str | None = None  # keyword cache; None: no cache
    model_cache_dir: str | None = None
    threads: int | None = None
    soft: str | None = "auto"
    scenario: str | None = None  # with 'auto' models: the scenario to load for (None: each one's, on first use)
    gallery: str | None = "auto"  # where targets find picture exemplars ('auto': the generator's own)

    def __call__(self) -> "PMG":
        return PMG.from_names(**dataclasses.asdict(self))


@dataclass
class Candidate:
    w_p: float
    w_t: float
    d_p: float | None
    d_t: float
    z: float
    image: Image.Image
    noise: int = 0  # which initial noise (0 .. noises - 1; ``GenerationConfig.noises``)
    p_img: float | None = None  # similarity to the history's pictures (its share of d_p: ``picture_weight``)
    t_img: float | None = None  # similarity to the target's pictures (its share of d_t)


@dataclass
class PMGResult:
    user_id: str
    scenario: str
    keywords: KeywordResult
    candidates: list[Candidate]
    best: int
    config: GenerationConfig
    timings: dict[str, float]
    models: dict[str, str]
    warnings: list[str] = field(default_factory=list)
    pictures: list[dict] = field(default_factory=list)  # the image prompts that went in (role, content hash, source)
    picture_images: list[Image.Image] = field(default_factory=list)  # those pictures, in the same order

    @property
    def best_image(self) -> Image.Image:
        return self.candidates[self.best].image


class PMG:
    def __init__(self, extractor: KeywordExtractor, generator: Generator, scorer: Scorer,
                 soft: SoftEmbedder | dict[str, SoftEmbedder] | None = None, *,
                 scenarios: dict[str, Callable[[], "PMG"]] | None = None, scenario_models: dict[str, dict] | None = None,
                 gallery=None):
        """``scenarios``: scenario -> a loader of the PMG that serves that scenario's users with its own
        models (called on its first user); users of other scenarios are served by this one.
        ``scenario_models``: scenario -> what its loader loads, told before it does (``scenario_models()``).
        ``gallery``: a ``pmg.pictures.gallery.Gallery`` (or a ``Lazy`` of one) indexed with ``scorer``, where
        targets without a picture find their exemplar (image prompts)."""
        self.extractor, self.generator, self.scorer, self.soft = extractor, generator, scorer, soft
        self._gallery = gallery
        # Safe from several threads: the generator runs concurrently (a scheduler per call, locked
        # tokenizers); the keyword stage, soft embeddings and scorer each run one call at a time.
        self._keyword_lock, self._soft_lock, self._score_lock = threading.Lock(), threading.Lock(), threading.Lock()
        # one Lazy per scenario: a scenario loading holds up no other, and a failed load is raised again
        self._scenarios: dict[str, Lazy[PMG]] = {s: Lazy(load) for s, load in (scenarios or {}).items()}
        self._scenario_specs = dict(scenario_models or {})

    @classmethod
    def from_names(
        cls,
        llm: str = "smollm2",
        generator: str = "auto",
        scorer: str = "auto",
        captioner: str | None = "tagger",
        *,
        scenario: str | None = None,
        llm_backend: str = "auto",
        llm_model_name: str = "default",
        scheduler: str | None = None,
        cache_dir: str | Path | None = None,
        model_cache_dir: str | Path | None = None,
        threads: int | None = None,
        soft: str | Path | None = "auto",
        gallery: str | Path | None = "auto",
    ) -> "PMG":
        """Models from names or local folders. 'auto' generator and scorer: each scenario's built-in model
        (``pmg.scenarios``): with ``scenario`` given, that scenario's; with None, the default scenario's
        first, and another scenario's own models when its first user comes. ``soft`` 'auto': the
        adapter bundled with the generator for each scenario; 'none' or None: no soft embeddings; an
        adapter folder: with ``scenario`` given, that scenario's; with None, the scenarios whose generator
        it was trained for (the others get their bundled one). ``gallery``: a folder of pictures with captions
        where targets find exemplars (``pmg.pictures.gallery``); 'auto': the generator folder's own
        ``gallery/``; None or 'none': no exemplars."""
        from pmg.keywords.extract import build_extractor
        from pmg.scenarios import DEFAULT_SCENARIO, SCENARIOS, resolve_models
        from pmg.scoring.scorers import load_scorer

        if threads:
            torch.set_num_threads(threads)
        model_cache_dir = model_cache_dir if model_cache_dir is not None else default_cache_dir()
        gen, sc = resolve_models(generator, scorer, scenario or DEFAULT_SCENARIO)
        if scenario is None and soft not in (None, "none", "auto"):
            gens = {generator_index(resolve_models(generator, scorer, s)[0])[0] for s in SCENARIOS}
            if adapter_generator(soft) not in gens:
                raise ConfigError(f"soft {soft}: trained for generator {adapter_generator(soft)!r}, which no scenario "
                                  f"uses ({', '.join(sorted(gens))})")
        own_soft = soft if scenario is not None else soft_for_generator(soft, gen)
        scorer_obj = load_scorer(sc)
        extractor = build_extractor(llm, backend=llm_backend, threads=threads or 2, model_name=llm_model_name,
                                    model_cache_dir=model_cache_dir, cache_dir=cache_dir,
                                    captioner=build_captioner(captioner, scorer_obj, sc))
        pmg = cls._with_models(extractor, gen, scorer_obj, scheduler=scheduler, soft=own_soft, model_cache_dir=model_cache_dir,
                               gallery=gallery)
        if scenario is None:
            for other in SCENARIOS:
                models = resolve_models(generator, scorer, other)
                if models != (gen, sc):
                    other_soft = soft_for_generator(soft, models[0])
                    pmg._scenarios[other] = Lazy(functools.partial(
                        pmg._sibling, *models, captioner=captioner, scheduler=scheduler, soft=other_soft,
                        model_cache_dir=model_cache_dir, gallery=gallery))
                    pmg._scenario_specs[other] = _models_to_load(*models, other_soft, other)
        return pmg

    @classmethod
    def _with_models(cls, extractor: KeywordExtractor, generator: str, scorer: Scorer, *, scheduler: str | None,
                     soft: str | Path | None, model_cache_dir: str | Path, gallery: str | Path | None = "auto") -> "PMG":
        """The generator and the soft-embedding adapters (and the reference gallery, indexed on first use)
        loaded around a keyword stage and a scorer."""
        from pmg.generation.loading import load_generator
        from pmg.pictures.gallery import gallery_folder

        pipe = load_generator(generator, scheduler=scheduler)
        folder = gallery_folder(gallery, generator) if getattr(pipe, "takes_images", False) else None
        lazy_gallery = Lazy(functools.partial(_index_gallery, folder, scorer, model_cache_dir)) if folder else None
        soft_obj = None
        if soft is not None and soft != "none":
            from pmg.soft.embedder import load_soft

            def load(folder):
                from pmg.quiet import quiet_loading

                with quiet_loading():  # peft's prefix tuning warns about transformers internals
                    return load_soft(folder, generator=pipe.name, embed_dim=pipe.embed_dim, generator_revision=pipe.revision,
                                     cache_dir=model_cache_dir)

            from pmg.lazy import LazySoft

            def lazy(folder):  # its LLM loads on first use (``PMG.prefetch_soft`` starts it early)
                return LazySoft(f"soft:{Path(folder).name}", functools.partial(load, folder))

            if soft == "auto":  # the bundled adapter of each scenario, for the bundled generator
                soft_obj = {scenario: lazy(folder) for scenario, folder in bundled_adapters(generator).items()} or None
            else:
                soft_obj = lazy(soft)
        return cls(extractor, pipe, scorer, soft=soft_obj, gallery=lazy_gallery)

    def _sibling(self, generator: str, scorer: str, *, captioner, scheduler, soft, model_cache_dir, gallery="auto") -> "PMG":
        """A PMG with other models around this one's LLM (loaded once, and run one call at a time)."""
        import copy

        from pmg.scoring.scorers import load_scorer

        scorer_obj = load_scorer(scorer)
        extractor = copy.copy(self.extractor)
        extractor.captioner = build_captioner(captioner, scorer_obj, scorer)
        pmg = type(self)._with_models(extractor, generator, scorer_obj, scheduler=scheduler, soft=soft,
                                      model_cache_dir=model_cache_dir, gallery=gallery)
        pmg._keyword_lock = self._keyword_lock
        return pmg

    def for_scenario(self, scenario: str) -> "PMG":
        """The PMG that serves a scenario's users: this one, or the one with the scenario's own models
        (loaded on first use; a load that failed raises its error again)."""
        lazy = self._scenarios.get(scenario)
        return self if lazy is None else lazy.get()

    def scenario_models(self) -> dict[str, dict]:
        """scenario -> the models that serve its users (generator, scorer, soft adapter, weight grid) and
        their status: 'loaded', 'not loaded' (what its first user will load) or 'failed' (with the error).
        Nothing is loaded to tell."""
        from pmg.behaviours.schema import Scenario

        out = {}
        for scenario in (s.value for s in Scenario):
            lazy = self._scenarios.get(scenario)
            if lazy is None or lazy.loaded:
                out[scenario] = (self if lazy is None else lazy.get())._loaded_models(scenario)
            else:
                out[scenario] = {"status": "failed" if lazy.error else "not loaded", **self._scenario_specs.get(scenario, {})}
                if lazy.error:
                    out[scenario]["error"] = f"{type(lazy.error).__name__}: {lazy.error}"
        return out

    def _loaded_models(self, scenario: str) -> dict:
        adapter = self.soft_for(scenario)
        return {"status": "loaded", "generator": self.generator.name, "scorer": self.scorer.name,
                "soft": adapter.name if adapter is not None else None,
                "default_grid": [list(w) for w in getattr(self.generator, "default_grid", DEFAULT_GRID)]}

    @property
    def gallery(self):
        """The reference gallery (indexed on first use), or None."""
        return self._gallery.get() if isinstance(self._gallery, Lazy) else self._gallery

    def keywords(self, user: UserBehaviours) -> KeywordResult:
        pmg = self.for_scenario(user.scenario.value)
        if pmg is not self:
            return pmg.keywords(user)
        self.prefetch_soft([user.scenario.value])
        with self._keyword_lock:
            return self.extractor(user)

    def soft_for(self, scenario: str):
        """The soft-embedding adapter for a scenario: one for all, or one per scenario (a dict)."""
        if isinstance(self.soft, dict):
            return self.soft.get(scenario)
        return self.soft

    def prefetch_soft(self, scenarios) -> None:
        """Start loading these scenarios' soft adapters in the background (their LLM loads while the
        keyword stage runs); no-op for adapters already loaded or not lazy."""
        for scenario in set(scenarios):
            adapter = self.for_scenario(scenario).soft_for(scenario)
            if hasattr(adapter, "start"):
                adapter.start()

    def generate(self, user: UserBehaviours, config: GenerationConfig | None = None, *, keywords: KeywordResult | None = None,
                 callback=None) -> PMGResult:
        return self.generate_many([user], [config], keywords=[keywords], callback=callback)[0]

    def _resolve_defaults(self, config: GenerationConfig) -> GenerationConfig:
        """The generator's own steps, alpha and grid where the config leaves them open (the manifest records them)."""
        if config.num_inference_steps is None:
            config = dataclasses.replace(config, num_inference_steps=self.generator.default_steps)
        if config.alpha is None:
            config = dataclasses.replace(config, alpha=getattr(self.generator, "default_alpha", 0.5))
        if config.weights is None:
            config = dataclasses.replace(config, weights=getattr(self.generator, "default_grid", DEFAULT_GRID))
        if config.noises is None:
            config = dataclasses.replace(config, noises=getattr(self.generator, "default_noises", 1))
        check_noises(config.noises, len(config.weights))
        return config

    def generate_many(self, users: list[UserBehaviours], configs: list[GenerationConfig | None], *,
                      keywords: list[KeywordResult | None] | None = None, callback=None) -> list[PMGResult]:
        """Several users at once: keywords in one batched LLM call, then one U-Net pass per group of
        users that share steps, guidance and negative prompt. Each result equals ``generate`` alone.
        Users whose scenario has its own models (``for_scenario``) are generated by that PMG."""
        keywords = list(keywords or [None] * len(users))
        routes: dict[int, list[int]] = {}
        for i, u in enumerate(users):
            routes.setdefault(id(self.for_scenario(u.scenario.value)), []).append(i)
        if len(routes) > 1 or id(self) not in routes:
            results: list[PMGResult | None] = [None] * len(users)
            for idx in routes.values():
                pmg = self.for_scenario(users[idx[0]].scenario.value)
                own = pmg.generate_many if pmg is not self else self._generate_own
                for i, r in zip(idx, own([users[i] for i in idx], [configs[i] for i in idx],
                                         keywords=[keywords[i] for i in idx], callback=callback)):
                    results[i] = r
            return results  # type: ignore[return-value]
        return self._generate_own(users, configs, keywords=keywords, callback=callback)

    def _generate_own(self, users: list[UserBehaviours], configs: list[GenerationConfig | None], *,
                      keywords: list[KeywordResult | None], callback=None) -> list[PMGResult]:
        """``generate_many`` with this PMG's own models."""
        configs = [c or GenerationConfig() for c in configs]
        configs = [self._resolve_defaults(c) for c in configs]
        keywords = list(keywords)
        t0 = time.perf_counter()
        todo = [i for i, k in enumerate(keywords) if k is None]
        if todo:
            self.prefetch_soft(users[i].scenario.value for i, c in enumerate(configs) if c.use_soft)
            with self._keyword_lock:
                for i, kw in zip(todo, self.extractor.batch([users[i] for i in todo])):
                    keywords[i] = kw
        keyword_s = (time.perf_counter() - t0) / max(1, len(todo))
        preps = [self._prepare(u, c, kw, keyword_s if i in todo else 0.0)
                 for i, (u, c, kw) in enumerate(zip(users, configs, keywords))]
        results: list[PMGResult | None] = [None] * len(users)
        groups: dict[tuple, list[int]] = {}
        for i, c in enumerate(configs):
            groups.setdefault((c.num_inference_steps, c.guidance_scale, c.negative_prompt), []).append(i)
        for (steps, guidance, _), idx in groups.items():
            t0 = time.perf_counter()
            outs = self.generator.denoise_grids([preps[i]["grid"] for i in idx], num_inference_steps=steps,
                                                guidance_scale=guidance, callback=callback)
            gen_s = (time.perf_counter() - t0) / len(idx)  # each user's share of the batched pass
            for i in idx:
                preps[i]["timings"]["generation_s"] = gen_s
            for i, r in zip(idx, self._select_many([users[i] for i in idx], [configs[i] for i in idx],
                                                   [keywords[i] for i in idx], outs, [preps[i] for i in idx])):
                results[i] = r
        return results  # type: ignore[return-value]

    def _select_many(self, users, configs, keywords, outs, preps) -> list[PMGResult]:
        """Score every user's candidates (and their image prompts) in one scorer call each for images and texts."""
        t0 = time.perf_counter()
        texts = [t for kw in keywords for t in [", ".join(kw.target)] + ([", ".join(kw.preference)] if kw.preference else [])]
        pics = [(p["pictures"].target, p["pictures"].history) for p in preps]
        with self._score_lock:
            img = self.scorer.embed_images([im for out in outs for im in out.images] + [im for t, h in pics for im in t + h])
            txt = self.scorer.embed_texts(texts)
        score_s = (time.perf_counter() - t0) / len(users)
        results, i_img, i_txt = [], 0, 0
        i_pic = sum(len(out.images) for out in outs)  # the pictures' embeddings follow all candidates'
        for user, config, kw, out, prep, (t, h) in zip(users, configs, keywords, outs, preps, pics):
            n = len(out.images)
            e_img, e_t = img[i_img : i_img + n], txt[i_txt]
            e_p = txt[i_txt + 1] if kw.preference else None
            e_pics = (img[i_pic : i_pic + len(t)], img[i_pic + len(t) : i_pic + len(t) + len(h)])
            i_img, i_txt, i_pic = i_img + n, i_txt + (2 if kw.preference else 1), i_pic + len(t) + len(h)
            results.append(self._select(user, config, kw, out, prep, e_img, e_t, e_p, score_s, e_pics))
        return results

    def _prepare(self, user: UserBehaviours, config: GenerationConfig, kw: KeywordResult, keyword_s: float) -> dict:
        """Soft embeddings and the encoded, weighted grid of one user."""
        timings = {"keywords_s": keyword_s}
        warnings = list(kw.warnings)
        pref = kw.preference if config.use_keywords else []
        soft, adapter = None, self.soft_for(user.scenario.value)
        if adapter is not None and config.use_soft:
            t0 = time.perf_counter()
            with self._soft_lock:
                soft = adapter.embed(kw)
            timings["soft_embeddings_s"] = time.perf_counter() - t0
        if not pref and soft is None:
            weights = [(0.0, 1.0)]  # nothing to weigh against: one target-only candidate
            if kw.preference and not config.use_keywords:
                warnings.append("keywords disabled (--no-keywords): target-only generation")
        else:
            weights = list(config.weights)
        pics, embeds = self._pictures(user, config, kw, timings)
        warnings += pics.warnings
        if "history" in embeds and weights == [(0.0, 1.0)]:
            weights = list(config.weights)  # the history's pictures are a preference condition of their own
        grid = self.generator.prepare_grid(kw.target, pref or None, weights=weights, soft_embeds=soft,
                                           negative_prompt=config.negative_prompt, weighting=config.weighting,
                                           generator=torch.Generator().manual_seed(config.seed), noises=config.noises,
                                           target_image_embeds=embeds.get("target"),
                                           preference_image_embeds=embeds.get("history"), image_scale=config.image_scale)
        return {"grid": grid, "timings": timings, "warnings": warnings, "adapter": adapter, "pictures": pics}

    def _pictures(self, user: UserBehaviours, config: GenerationConfig, kw: KeywordResult, timings: dict):
        """The user's pictures (``pmg.pictures.prompts``), for a generator that takes them: its image prompts
        (their embeddings, returned here), and the selection scores against them. A generator without image
        prompts keeps the paper's text-only selection."""
        from pmg.pictures.prompts import PicturePrompts, choose_pictures

        if not getattr(self.generator, "takes_images", False) or not (config.history_images or config.target_images):
            return PicturePrompts(), {}
        t0 = time.perf_counter()
        gallery = self.gallery if config.target_images and user.target.item is None else None
        with self._score_lock:
            pics = choose_pictures(user, kw.target, k=config.image_k, history=config.history_images,
                                   target=config.target_images, gallery=gallery, embed_text=self.scorer.embed_texts)
        embeds = {role: self.generator.encode_images(images) for role, images in
                  (("target", pics.target), ("history", pics.history)) if images}
        if pics:
            timings["pictures_s"] = time.perf_counter() - t0
        return pics, embeds

    def _select(self, user: UserBehaviours, config: GenerationConfig, kw: KeywordResult, out, prep: dict,
                img: torch.Tensor, e_t: torch.Tensor, e_p: torch.Tensor | None, score_s: float,
                e_pics: tuple[torch.Tensor, torch.Tensor] | None = None) -> PMGResult:
        """d_p, d_t of every candidate against the two keyword sets (and, with image prompts, their
        pictures: ``picture_weight``'s share); keep the one maximising z."""
        from pmg.scoring.select import mix_pictures, picture_similarity

        d_p, d_t = similarity_scores(img, e_p, e_t)
        t_img, p_img = (picture_similarity(img, e) for e in (e_pics or (None, None)))
        d_p, d_t = mix_pictures(d_p, p_img, config.picture_weight), mix_pictures(d_t, t_img, config.picture_weight)
        z = z_scores(d_p, d_t, config.alpha)
        best = select_best(z)
        timings = dict(prep["timings"], scoring_s=score_s)
        cands = [
            Candidate(w_p=wp, w_t=wt, d_p=None if d_p is None else float(d_p[i]), d_t=float(d_t[i]), z=float(z[i]), image=im,
                      noise=i * config.noises // len(out.weights), p_img=None if p_img is None else float(p_img[i]),
                      t_img=None if t_img is None else float(t_img[i]))
            for i, ((wp, wt), im) in enumerate(zip(out.weights, out.images))
        ]
        models = {"llm": kw.model, "generator": self.generator.name, "scorer": self.scorer.name}
        if prep["adapter"] is not None:
            models["soft"] = prep["adapter"].name
        return PMGResult(user.user_id, user.scenario.value, kw, cands, best, config, timings, models, prep["warnings"],
                         prep["pictures"].records, prep["pictures"].images)
