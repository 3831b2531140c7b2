"""The paper's setup (SD 1.x + CLIP + a Llama-style LLM from local folders), on tiny random models
saved in exactly those layouts."""

import torch
from helpers import save_tiny_clip, save_tiny_llama, save_tiny_pmg_mini, save_tiny_sd
from PIL import Image

from pmg.generation.loading import load_generator
from pmg.llm import ChatRequest, load_llm
from pmg.scoring.scorers import CLIPScorer, load_scorer


def test_stable_diffusion_layout_generates(tmp_path):
    pipe = load_generator(save_tiny_sd(tmp_path / "sd"), scheduler="DDIMScheduler")
    assert type(pipe.scheduler).__name__ == "DDIMScheduler"
    assert pipe.window == 77
    out = pipe(["happy"], ["cat"], weights=[(1, 3), (3, 1)], num_inference_steps=2,
               generator=torch.Generator().manual_seed(0))
    assert len(out.images) == 2 and out.images[0].size == (16, 16)
    assert out.context_tokens == 77 * 2
    # CLIP's window: a long keyword list is chunked, not truncated
    long = [f"keyword{i}" for i in range(60)]
    from pmg.conditioning.encode import count_chunks

    n = count_chunks(pipe.tokenizer, ", ".join(long), 77)
    assert n >= 2 and pipe.encode_keywords(long).shape[1] == 77 * n


def test_pmg_mini_layout_loads(tmp_path):
    pipe = load_generator(save_tiny_pmg_mini(tmp_path / "mini"))
    assert pipe.name == "tiny-mini" and pipe.window == 16
    assert type(pipe.scheduler).__name__ == "FlowMatchEulerDiscreteScheduler"
    assert pipe.default_steps == 20 and pipe.default_alpha == 0.5  # neither in model_index.json: the paper's a
    assert pipe.default_grid == ((0, 4), (1, 3), (2, 2), (3, 1), (4, 0))  # and the paper's grid


def test_model_default_steps_are_used_and_checked(tmp_path):
    import json

    import pytest

    from pmg.errors import ModelLoadError

    folder = save_tiny_pmg_mini(tmp_path / "mini")
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps({**index, "default_steps": 3}))
    pipe = load_generator(folder)
    assert pipe.default_steps == 3
    calls = []
    pipe(["cat"], None, weights=[(0, 1)], generator=torch.Generator().manual_seed(0), callback=lambda i, n: calls.append(n))
    assert calls == [3, 3, 3]
    calls.clear()
    pipe(["cat"], None, weights=[(0, 1)], num_inference_steps=2, generator=torch.Generator().manual_seed(0),
         callback=lambda i, n: calls.append(n))
    assert calls == [2, 2]
    (folder / "model_index.json").write_text(json.dumps({**index, "default_steps": 0}))
    with pytest.raises(ModelLoadError, match="default_steps must be a positive integer, got 0"):
        load_generator(folder)


def test_model_default_alpha_is_read_and_checked(tmp_path):
    import json

    import pytest

    from pmg.errors import ModelLoadError

    folder = save_tiny_pmg_mini(tmp_path / "mini")
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps({**index, "default_alpha": 0.2}))
    assert load_generator(folder).default_alpha == 0.2
    for bad in (1.5, "0.2", True):
        (folder / "model_index.json").write_text(json.dumps({**index, "default_alpha": bad}))
        with pytest.raises(ModelLoadError, match=f"default_alpha must be a number from 0 to 1, got {bad!r}"):
            load_generator(folder)


def test_model_default_grid_is_read_and_checked(tmp_path):
    import json

    import pytest

    from pmg.errors import ModelLoadError

    folder = save_tiny_pmg_mini(tmp_path / "mini")
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps({**index, "default_grid": "0:4, 2:2,5:1,4:0"}))
    assert load_generator(folder).default_grid == ((0, 4), (2, 2), (5, 1), (4, 0))
    for bad, why in (("0:4,x:1", "'x:1' is not of the form"), ("0:0", "not both 0"), ("", "'' is not of the form"), (3, "got 3")):
        (folder / "model_index.json").write_text(json.dumps({**index, "default_grid": bad}))
        with pytest.raises(ModelLoadError, match="default_grid must be ratios like") as e:
            load_generator(folder)
        assert why in str(e.value)


def test_model_default_noises_is_read_and_checked(tmp_path):
    import json

    import pytest

    from pmg.errors import ModelLoadError

    folder = save_tiny_pmg_mini(tmp_path / "mini")
    index = json.loads((folder / "model_index.json").read_text())
    assert load_generator(folder).default_noises == 1  # the paper: one image per weighting
    (folder / "model_index.json").write_text(json.dumps({**index, "default_noises": 3}))
    assert load_generator(folder).default_noises == 3
    for bad in (0, 2.5, "3", True):
        (folder / "model_index.json").write_text(json.dumps({**index, "default_noises": bad}))
        with pytest.raises(ModelLoadError, match=f"default_noises must be an integer >= 1, got {bad!r}"):
            load_generator(folder)


def test_clip_scorer_from_folder(tmp_path):
    scorer = load_scorer(save_tiny_clip(tmp_path / "clip"))
    assert isinstance(scorer, CLIPScorer)
    imgs = [Image.new("RGB", (40, 40), c) for c in ("red", "blue")]
    e_i = scorer.embed_images(imgs)
    e_t = scorer.embed_texts(["a red square", ", ".join(f"word{i}" for i in range(80))])
    assert e_i.shape == (2, 16) and e_t.shape == (2, 16)
    torch.testing.assert_close(e_i.norm(dim=-1), torch.ones(2))
    torch.testing.assert_close(e_t.norm(dim=-1), torch.ones(2))


def test_llama_style_folder_generates(tmp_path):
    llm = load_llm(str(save_tiny_llama(tmp_path / "llama")))
    outs = llm.generate([ChatRequest("sys", "hello", "The keywords are:", 5), ChatRequest("", "a longer question here", "", 5)])
    assert len(outs) == 2 and all(isinstance(o, str) for o in outs)
    again = llm.generate([ChatRequest("sys", "hello", "The keywords are:", 5)])
    assert again[0] == outs[0]  # greedy: deterministic, and left padding does not change the answer


def test_llamacpp_backend_is_optional_and_says_how_to_install(tmp_path):
    import importlib.util

    import pytest

    from pmg.errors import ModelLoadError

    if importlib.util.find_spec("llama_cpp") is not None:
        pytest.skip("llama-cpp-python is installed here")
    f = tmp_path / "m.gguf"
    f.write_bytes(b"GGUF")
    with pytest.raises(ModelLoadError, match="pip install llama-cpp-python"):
        load_llm(str(f), backend="llamacpp")


def test_unknown_names_are_clear():
    import pytest

    from pmg.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match="LLM not found: /no/such"):
        load_llm("/no/such")
    with pytest.raises(ModelLoadError, match="generator folder not found"):
        load_generator("/no/such/folder")
    with pytest.raises(ModelLoadError, match="scorer folder not found"):
        load_scorer("/no/such/folder")
