"""Loading: lazy components, the shared MiniLM, quiet loaders, bundled files, torch's thread count."""

import threading

import pytest
import torch

from pmg.errors import InputError
from pmg.lazy import Lazy, LazySoft


def test_lazy_loads_once_for_many_threads_and_in_the_background():
    calls = []
    gate = threading.Event()

    def load():
        gate.wait(5)
        calls.append(1)
        return "model"

    lazy = Lazy(load)
    lazy.start()
    lazy.start()  # a second start is a no-op
    assert not lazy.loaded
    gate.set()
    outs = []
    threads = [threading.Thread(target=lambda: outs.append(lazy.get())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outs == ["model"] * 4 and calls == [1] and lazy.loaded


def test_lazy_start_does_not_wait_for_a_load_in_progress():
    """PMG.generate from several threads: one thread loading the adapter must not hold up another's
    keyword stage, which only asks for an early start (prefetch_soft)."""
    gate, loading = threading.Event(), threading.Event()

    def load():
        loading.set()
        gate.wait(10)
        return "model"

    from helpers import waits_behind_a_load

    lazy = Lazy(load)
    assert not waits_behind_a_load(lazy.get, lazy.start, loading, gate), "start() waited for another caller's load"
    assert lazy.get() == "model"


def test_lazy_raises_its_load_error_to_every_caller():
    lazy = Lazy(lambda: (_ for _ in ()).throw(ValueError("bad folder /x")))
    for _ in range(2):
        with pytest.raises(ValueError, match="bad folder /x"):
            lazy.get()


def test_lazy_soft_names_itself_without_loading_and_embeds_on_first_use():
    class Embedder:
        def embed(self, kw):
            return torch.full((1, 2, 3), float(len(kw)))

    loads = []
    soft = LazySoft("soft:soft-emoticon", lambda: loads.append(1) or Embedder())
    assert soft.name == "soft:soft-emoticon" and loads == []
    assert soft.embed("abcd")[0, 0, 0].item() == 4.0 and soft.embed("ab")[0, 0, 0].item() == 2.0 and loads == [1]


@pytest.mark.slow
def test_minilm_is_loaded_once_and_each_caller_has_its_own_tokenizer():
    from pmg.generation.text_encoders import load_minilm

    tok_a, enc_a = load_minilm(max_length=32)
    tok_b, enc_b = load_minilm(max_length=128)
    assert enc_a is enc_b and tok_a is not tok_b
    assert (tok_a.model_max_length, tok_b.model_max_length) == (32, 128)


def test_grounding_leaves_torch_threads_alone():
    from pmg.keywords.ground import SentenceEmbedder

    seen = []

    class Encoder(torch.nn.Module):
        def forward(self, input_ids, attention_mask, **_):
            seen.append(torch.get_num_threads())
            return (torch.ones(input_ids.shape[0], input_ids.shape[1], 4),)

    def tokenizer(texts, **_):
        n = max(len(t) for t in texts)
        return {"input_ids": torch.ones(len(texts), n, dtype=torch.long), "attention_mask": torch.ones(len(texts), n, dtype=torch.long)}

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        emb = SentenceEmbedder(tokenizer, Encoder())(["cat", "kitten"])
        assert seen == [2] and emb.shape == (2, 4)
    finally:
        torch.set_num_threads(before)


def test_bundled_examples_by_name_and_models_dir_lookup(monkeypatch, tmp_path):
    from pmg.bundled import example_user, models_dir, resolve_user_path

    assert example_user("cat_lover").name == "cat_lover.json" and example_user("cat_lover").is_file()
    assert resolve_user_path("cat_lover") == example_user("cat_lover")
    assert resolve_user_path("my/file.json").as_posix() == "my/file.json"  # a path is never an example name
    with pytest.raises(InputError, match=r"no example user 'cat_lovr' \(bundled: cat_lover, "):
        example_user("cat_lovr")
    assert (models_dir() / "pmg-mini" / "model_index.json").is_file()
    monkeypatch.setenv("PMG_MODELS_DIR", str(tmp_path))
    assert models_dir() == tmp_path


def test_quiet_loading_silences_transformers_bars_and_restores_them():
    import transformers.utils.logging as tlog

    from pmg.quiet import quiet_loading

    tlog.enable_progress_bar()
    with quiet_loading():
        with quiet_loading():  # nested: the inner exit does not restore
            pass
        assert not tlog.is_progress_bar_enabled()
    assert tlog.is_progress_bar_enabled()


@pytest.mark.slow
def test_a_generator_moved_to_a_device_leaves_the_shared_minilm_where_it_was():
    """The frozen MiniLM is shared by the generator, the scorer and keyword grounding: a generator loaded
    for another device moves a copy of it, never the one the others use."""
    from pmg.generation.loading import load_generator
    from pmg.generation.text_encoders import load_minilm

    pipe = load_generator("pmg-mini", device="meta")
    assert {p.device.type for p in pipe.text_encoder.parameters()} == {"meta"}
    _, shared = load_minilm()
    assert {p.device.type for p in shared.parameters()} == {"cpu"}


def test_a_file_that_is_no_gguf_is_refused_before_the_llm_process_starts(tmp_path):
    from pmg.errors import ModelLoadError
    from pmg.llm.process import ProcessLLM

    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf")
    with pytest.raises(ModelLoadError, match="not a GGUF file"):
        ProcessLLM(bad)
    with pytest.raises(ModelLoadError, match="could not load .*missing.gguf"):
        ProcessLLM(tmp_path / "missing.gguf")
