"""Real offline models: SmolLM2-135M-Instruct (from its wheel), MiniLM, and the shipped pmg-mini."""

import json
import os
import subprocess
import sys

import pytest

from pmg.behaviours.schema import load_user
from pmg.keywords.parse import normalize_keyword

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm2():
    from pmg.llm import load_llm

    return load_llm("smollm2", backend="transformers")


def test_smollm2_finds_cat_for_the_cat_lover(repo):
    from pmg.keywords.extract import build_extractor

    ext = build_extractor("smollm2")  # the default: llama.cpp (xllamacpp), JSON-constrained, grounded
    res = ext(load_user(repo / "examples/users/cat_lover.json"))
    keys = [normalize_keyword(k) for k in res.preference]
    assert "cat" in keys, res.raw_answers
    assert "twemoji style" in keys  # the explicit style every item carries
    assert 1 <= len(res.preference) <= 10 and 1 <= len(res.target) <= 5
    assert res.prompt_version == "emoticon-v2" and res.model == "smollm2:llama.cpp"
    assert res.target[0] == "happy"  # "I'm so happy today!"
    assert all(raw.lstrip().startswith("[") for raw in res.raw_answers.values())  # constrained to JSON lists


def test_smollm2_is_deterministic(smollm2):
    from pmg.llm import ChatRequest

    req = [ChatRequest("You are helpful.", "List three fruits.", "The fruits are: 1.", 16)]
    assert smollm2.generate(req) == smollm2.generate(req)


def test_readme_main_command_on_the_bundled_example(repo, tmp_path):
    """`pmg generate examples/users/cat_lover.json --out DIR` with the shipped pmg-mini, as a user runs it."""
    out = tmp_path / "cat_lover"
    env = dict(os.environ, PMG_CACHE_DIR=str(tmp_path / "cache"))
    r = subprocess.run([sys.executable, "-m", "pmg.cli", "generate", str(repo / "examples/users/cat_lover.json"),
                        "--out", str(out), "--no-progress"], capture_output=True, text=True, env=env, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.loads((out / "manifest.json").read_text())
    assert m["models"]["generator"] == "pmg-mini" and m["models"]["llm"] == "smollm2:llama.cpp"
    assert len(m["candidates"]) == 5 and 0 <= m["best"] < 5
    assert "cat" in [normalize_keyword(k) for k in m["keywords"]["preference"]]
    from PIL import Image

    best = Image.open(out / "best.png")
    assert best.size == (64, 64)  # pmg-mini v2
    import numpy as np

    assert np.asarray(best).std() > 5  # an image, not a flat colour
    assert Image.open(out / "best_large.png").size == (256, 256)


def test_one_pass_gguf_loader_equals_transformers(smollm2):
    """pmg.llm.gguf_torch reads SmolLM2's GGUF once; transformers' own path (three reads) gives the
    same config, the same weights bit for bit, the same tokenizer and the same greedy answer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from pmg.llm import ChatRequest
    from pmg.llm.gguf_torch import load_gguf_llama
    from pmg.registry import resolve_llm

    path = resolve_llm("smollm2")
    ours, tok = load_gguf_llama(path)
    ref = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    ref_tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    a, b = ours.config.to_dict(), ref.config.to_dict()
    for key in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "head_dim", "rms_norm_eps", "rope_parameters", "tie_word_embeddings",
                "max_position_embeddings", "bos_token_id", "eos_token_id", "pad_token_id"):
        assert a[key] == b[key], key
    ref_sd = ref.state_dict()
    assert set(ours.state_dict()) == set(ref_sd)
    assert all(torch.equal(t, ref_sd[k]) for k, t in ours.state_dict().items())
    text = 'The user\'s conversations are: "so happy". <|im_start|> t-shirt 90s'
    assert tok(text)["input_ids"] == ref_tok(text)["input_ids"] and tok.chat_template == ref_tok.chat_template
    req = [ChatRequest("You are helpful.", "Name a colour.", "The colour is", 8)]
    from pmg.llm.transformers_llm import TransformersLLM

    assert TransformersLLM(model=ref, tokenizer=ref_tok).generate(req) == smollm2.generate(req)


def _fixture_strip(fix, size: int):
    """A fixture folder's index.json and the square tiles of its strip.png, one per indexed image."""
    from PIL import Image

    index = json.loads((fix / "index.json").read_text())
    strip = Image.open(fix / "strip.png").convert("RGB")
    return index, [strip.crop((size * j, 0, size * j + size, size)) for j in range(len(index["images"]))]


def test_shipped_scorer_recognises_held_out_real_emoji(repo):
    """The shipped mini-CLIP on 24 real emoji of held-out (concept, style) pairs, 348 candidate labels."""
    import numpy as np

    from pmg.scoring.scorers import load_scorer

    index, images = _fixture_strip(repo / "tests/fixtures/heldout_emoji", 32)
    scorer = load_scorer(repo / "models/pmg-mini/scorer")
    e_img = scorer.embed_images(images)
    top5 = (e_img @ scorer.embed_texts(index["labels"]).T).topk(5, dim=1).indices.numpy()
    want = np.array([index["labels"].index(m["label"]) for m in index["images"]])
    hits = (top5 == want[:, None]).any(1)
    styles = ["noto", "twemoji", "openmoji"]
    style_pred = (e_img @ scorer.embed_texts([f"{s} style" for s in styles]).T).argmax(1).numpy()
    style_ok = np.array([styles[p] == m["style"] for p, m in zip(style_pred, index["images"])])
    assert hits.mean() >= 0.5, [m["label"] for m, h in zip(index["images"], hits) if not h]
    # style of real emoji: 84.1% on all 378 held-out images (chance 33%); 24 images give a noisy estimate
    assert style_ok.mean() >= 0.7, [(m["label"], m["style"]) for m, ok in zip(index["images"], style_ok) if not ok]


def test_llamacpp_and_transformers_backends_agree_on_what_matters(repo):
    """Same GGUF file, both backends, greedy. Their raw answers differ, and are not expected to match:
    llama.cpp computes with the file's Q4_1 weights in its own kernels, transformers dequantises them
    to fp32 and runs PyTorch's, so greedy decoding parts ways after a few tokens; and llama.cpp's
    answers are JSON-constrained while transformers' are free text. What the user gets must agree:
    the grounded keywords name the cat and the art style, and the target leads with the mood."""
    from pmg.keywords.extract import build_extractor

    user = load_user(repo / "examples/users/cat_lover.json")
    results = {b: build_extractor("smollm2", backend=b)(user) for b in ("xllamacpp", "transformers")}
    for backend, res in results.items():
        keys = [normalize_keyword(k) for k in res.preference]
        assert "cat" in keys and "twemoji style" in keys, (backend, res.preference)
        assert res.target[0] == "happy" and len(res.target) == 5, (backend, res.target)
    assert results["xllamacpp"].model != results["transformers"].model  # cached apart


@pytest.mark.slow
def test_llama_cpp_runs_in_its_own_process_and_serves_threads(tmp_path):
    """The GGUF default: llama.cpp in a child process (no torch there), concurrent calls answered in slots,
    the same answers as one at a time; errors come back as messages."""
    from concurrent.futures import ThreadPoolExecutor

    from pmg.errors import ModelLoadError
    from pmg.llm import ChatRequest, load_llm
    from pmg.llm.process import ProcessLLM

    llm = load_llm("smollm2")
    assert isinstance(llm, ProcessLLM) and llm.name == "smollm2:llama.cpp" and llm._proc.poll() is None
    reqs = [[ChatRequest("You name colours.", f"Name the colour of {thing}.", max_new_tokens=8)] for thing in
            ("the sky", "grass", "snow", "blood")]
    alone = [llm.generate(r) for r in reqs]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(llm.generate, reqs))
    assert together == alone and all(a[0] for a in alone)
    llm.close()
    assert llm._proc.poll() is not None  # the child is gone
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf")
    with pytest.raises(ModelLoadError, match="could not load"):
        ProcessLLM(bad)




def test_shipped_fashion_scorer_reads_held_out_real_garments(repo):
    """pmg-mini-fashion's scorer on 50 real garments (Fashion-MNIST test shapes) in (type, colour, pattern)
    combinations kept out of training: the type of 10, the colour of 12, the pattern of 5."""
    import numpy as np

    from pmg.evaluation.benchmarks.garments import classify_garments
    from pmg.scoring.scorers import load_scorer

    index, images = _fixture_strip(repo / "tests/fixtures/heldout_garments", 64)
    items = index["images"]
    seen = classify_garments(load_scorer(repo / "models/pmg-mini-fashion/scorer"), images)
    acc = {k: np.mean([s == m[k] for s, m in zip(seen[k], items)]) for k in ("type", "colour", "pattern")}
    # shipped scorer: type 88%, colour 96%, pattern 100% here (81.8 / 95.7 / 99.3% on all 280 held-out garments;
    # the scorer before --shop-lists: 84 / 94 / 100%);
    # the misreadings are t-shirt/shirt/coat/pullover, Fashion-MNIST's known confusions
    assert acc["type"] >= 0.75 and acc["colour"] >= 0.85 and acc["pattern"] >= 0.9, acc


def test_shipped_fashion_model_dresses_the_bundled_shoppers(repo, tmp_path):
    """`pmg generate` on the two bundled shoppers picks pmg-mini-fashion and its adapter (auto) and draws
    the target garment in the shopper's colour / pattern, as the shipped scorer reads the chosen image."""
    from PIL import Image

    from pmg.evaluation.benchmarks.garments import classify_garments
    from pmg.scoring.scorers import load_scorer

    scorer = load_scorer(repo / "models/pmg-mini-fashion/scorer")
    env = dict(os.environ, PMG_CACHE_DIR=str(tmp_path / "cache"))
    seen = {}
    for name in ("clothing_shopper", "stripes_shopper"):
        out = tmp_path / name
        r = subprocess.run([sys.executable, "-m", "pmg.cli", "generate", str(repo / f"examples/users/{name}.json"),
                            "--out", str(out), "--no-progress"], capture_output=True, text=True, env=env, timeout=900)
        assert r.returncode == 0, r.stderr[-2000:]
        m = json.loads((out / "manifest.json").read_text())
        assert m["models"]["generator"] == "pmg-mini-fashion" and m["models"]["soft"] == "soft:soft-clothing"
        # the model's grid: 1:1.5 and 2:2, each from three noises (noise-major), chosen with a = 0.3
        assert [(c["w_p"], c["w_t"], c["noise"]) for c in m["candidates"]] == [(1, 1.5, 0), (2, 2, 0), (1, 1.5, 1), (2, 2, 1),
                                                                               (1, 1.5, 2), (2, 2, 2)]
        assert m["alpha"] == 0.3
        images = [Image.open(out / "best.png")] + [Image.open(out / c["file"]) for c in m["candidates"]]
        seen[name] = classify_garments(scorer, images)  # [chosen, then the six candidates]
    black = seen["clothing_shopper"]
    assert black["colour"][0] == "black" and black["type"][0] in ("shirt", "t-shirt"), black
    stripes = seen["stripes_shopper"]  # target "long-sleeve shirt", history of red striped garments
    # the chosen shirt carries the preference: red or striped (which one varies between runs: once in CI
    # a 2:2 candidate came out plain red and was chosen; locally, striped); here every candidate was
    # striped, the chosen one red, three of six red
    assert stripes["type"][0] == "shirt" and (stripes["pattern"][0] == "striped" or stripes["colour"][0] == "red"), stripes
    assert sum(p == "striped" for p in stripes["pattern"][1:]) >= 4, stripes  # the preference is in most of the grid
