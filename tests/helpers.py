"""Tiny seeded components (diffusers' get_dummy_components habit), and savers for the real layouts."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from pmg.generation.codec import PixelShuffleCodec
from pmg.generation.pipeline import PMGPipeline
from pmg.generation.text_encoders import minilm_path

D = 32  # tiny cross-attention / text width


def tiny_bert(seed: int = 0, max_length: int = 16):
    """MiniLM's real tokenizer with a 2-layer random BERT of width D."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    tok = AutoTokenizer.from_pretrained(minilm_path())
    tok.model_max_length = max_length
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=D, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=64)
    enc = BertModel(cfg).eval().requires_grad_(False)
    enc.config.use_attention_mask = True
    return tok, enc


def tiny_unet(seed: int = 0, in_channels: int = 12, sample_size: int = 8):
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    return UNet2DConditionModel(
        sample_size=sample_size, in_channels=in_channels, out_channels=in_channels,
        block_out_channels=(16, 32), layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=D, attention_head_dim=4, norm_num_groups=8,
    ).eval()


def tiny_pipeline(seed: int = 0) -> PMGPipeline:
    from diffusers import FlowMatchEulerDiscreteScheduler

    tok, enc = tiny_bert(seed)
    return PMGPipeline(tiny_unet(seed), FlowMatchEulerDiscreteScheduler(shift=1.0), PixelShuffleCodec(2, 16),
                       tok, enc, name="tiny")


def save_tiny_pmg_mini(folder: Path, seed: int = 0) -> Path:
    """A pmg-mini-layout folder whose text encoder is a tiny BERT saved as a subfolder."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    tok, enc = tiny_bert(seed)
    tok.save_pretrained(folder / "text_encoder")
    enc.save_pretrained(folder / "text_encoder")
    tiny_unet(seed).save_pretrained(folder / "unet")
    FlowMatchEulerDiscreteScheduler(shift=1.0).save_pretrained(folder / "scheduler")
    PixelShuffleCodec(2, 16).save_pretrained(folder / "codec")
    (folder / "model_index.json").write_text(json.dumps(
        {"_class_name": "PMGMiniPipeline", "name": "tiny-mini", "text_encoder": "text_encoder", "max_length": 16}))
    return folder


def save_tiny_sd(folder: Path, seed: int = 0) -> Path:
    """Stable Diffusion 1.x diffusers layout: tiny UNet, VAE and CLIP text model, the real CLIP tokenizer."""
    from diffusers import AutoencoderKL, PNDMScheduler
    from transformers import CLIPTextConfig, CLIPTextModel

    from pmg.generation.clip_tokenizer import write_clip_tokenizer_files

    torch.manual_seed(seed)
    write_clip_tokenizer_files(folder / "tokenizer")
    te = CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=D, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=2, max_position_embeddings=77, projection_dim=D))
    te.save_pretrained(folder / "text_encoder")
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
                        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"), block_out_channels=(8, 16),
                        latent_channels=4, norm_num_groups=8, sample_size=16)
    vae.save_pretrained(folder / "vae")
    tiny_unet(seed, in_channels=4, sample_size=8).save_pretrained(folder / "unet")
    PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", skip_prk_steps=True).save_pretrained(folder / "scheduler")
    (folder / "model_index.json").write_text(json.dumps({
        "_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.42.1",
        "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
        "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
        "scheduler": ["diffusers", "PNDMScheduler"]}))
    return folder


def save_tiny_clip(folder: Path, seed: int = 0) -> Path:
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    from pmg.generation.clip_tokenizer import write_clip_tokenizer_files

    torch.manual_seed(seed)
    cfg = CLIPConfig(
        text_config=dict(vocab_size=49408, hidden_size=D, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=77),
        vision_config=dict(hidden_size=D, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8),
        projection_dim=16,
    )
    CLIPModel(cfg).save_pretrained(folder)
    write_clip_tokenizer_files(folder)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def save_tiny_llama(folder: Path, seed: int = 0) -> Path:
    """A Llama-style causal LM folder (random weights) with MiniLM's tokenizer."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(minilm_path())
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                      pad_token_id=tok.pad_token_id, eos_token_id=tok.sep_token_id, bos_token_id=tok.cls_token_id)
    LlamaForCausalLM(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


class ScriptedLLM:
    """An LLM whose answers are given by the test: a function of the request's user text."""

    def __init__(self, answer, name: str = "scripted"):
        self.answer, self.name, self.calls = answer, name, 0

    def generate(self, requests):
        self.calls += len(requests)
        return [self.answer(r.user) for r in requests]


# emoji concepts for fixture art folders (hexcode, label, group, subgroup)
CONCEPTS = [  # hexcode, label, group, subgroup
    ("1F600", "grinning face", "smileys-emotion", "face-smiling"),
    ("1F602", "face with tears of joy", "smileys-emotion", "face-smiling"),
    ("1F60D", "smiling face with heart-eyes", "smileys-emotion", "face-affection"),
    ("1F622", "crying face", "smileys-emotion", "face-concerned"),
    ("1F620", "angry face", "smileys-emotion", "face-negative"),
    ("1F632", "astonished face", "smileys-emotion", "face-concerned"),
    ("1F62B", "tired face", "smileys-emotion", "face-concerned"),
    ("1F609", "winking face", "smileys-emotion", "face-smiling"),
    ("1F63A", "grinning cat", "smileys-emotion", "cat-face"),
    ("1F639", "cat with tears of joy", "smileys-emotion", "cat-face"),
    ("1F63B", "smiling cat with heart-eyes", "smileys-emotion", "cat-face"),
    ("1F63C", "cat with wry smile", "smileys-emotion", "cat-face"),
    ("1F63D", "kissing cat", "smileys-emotion", "cat-face"),
    ("1F431", "cat face", "animals-nature", "animal-mammal"),
    ("1F408", "cat", "animals-nature", "animal-mammal"),
]


class ColourScorer:
    """Scores by colour: 'red' text likes red images, 'blue' text blue ones (a constructed case)."""

    name = "colour"

    def embed_images(self, images):
        v = torch.tensor([[im.convert("RGB").getpixel((0, 0))[0] + 1.0, im.convert("RGB").getpixel((0, 0))[2] + 1.0] for im in images])
        return torch.nn.functional.normalize(v, dim=-1)

    def embed_texts(self, texts):
        v = torch.tensor([[1.0 + 9 * ("red" in t), 1.0 + 9 * ("blue" in t)] for t in texts])
        return torch.nn.functional.normalize(v, dim=-1)


def animal_answer(text: str) -> str:
    """Scripted keywords: the first animal named in the prompt; the target's mood."""
    if "just wrote" in text:
        return "happy; 2. smile" if "happy" in text else "sad; 2. tears"
    for animal in ("cat", "dog", "fox", "owl", "bee", "cow", "pig", "elk"):
        if animal in text:
            return f"{animal}; 2. {animal} face; 3. red"
    return "thing"


def tiny_pmg():
    """A whole PMG from tiny seeded parts (scripted LLM, tiny pipeline, colour scorer): picklable by
    reference, so batch worker processes and Ray actors load it themselves."""
    from pmg.api import PMG
    from pmg.keywords.extract import KeywordExtractor

    return PMG(KeywordExtractor(ScriptedLLM(animal_answer)), tiny_pipeline(0), ColourScorer())


def tiny_pmg_by_scenario():
    """``tiny_pmg`` whose clothing users get their own generator (seeded differently), loaded on the first
    one, as ``PMG.from_names`` gives each scenario its own models. Picklable by reference, like ``tiny_pmg``."""
    from pmg.api import PMG
    from pmg.keywords.extract import KeywordExtractor

    def clothing():
        return PMG(KeywordExtractor(ScriptedLLM(animal_answer)), tiny_pipeline(1), ColourScorer())

    base = tiny_pmg()
    return PMG(base.extractor, base.generator, base.scorer, scenarios={"clothing": clothing})


def patch_tiny_models(monkeypatch, answer=animal_answer) -> list[str]:
    """``PMG.from_names`` loads tiny seeded models instead of the real ones: a tiny pipeline named like the
    generator asked for, ``ColourScorer``, and a keyword stage answered by ``answer``. Returns the list of
    generator names loaded, in order."""
    from pmg.keywords.extract import KeywordExtractor

    loaded: list[str] = []

    def fake_generator(spec, scheduler=None):
        loaded.append(str(spec))
        pipe = tiny_pipeline(0)
        pipe.name = str(spec)
        return pipe

    monkeypatch.setattr("pmg.generation.loading.load_generator", fake_generator)
    monkeypatch.setattr("pmg.scoring.scorers.load_scorer", lambda name: ColourScorer())
    monkeypatch.setattr("pmg.keywords.extract.build_extractor", lambda *a, **k: KeywordExtractor(ScriptedLLM(answer)))
    return loaded


def waits_behind_a_load(load_call, other_call, loading, gate) -> bool:
    """Whether ``other_call`` (in a thread) waits for ``load_call``'s load in progress: ``load_call`` runs in a
    thread until its loader sets ``loading`` and blocks on ``gate``; ``other_call`` gets 2 s to finish."""
    import threading

    loader = threading.Thread(target=load_call)
    loader.start()
    assert loading.wait(5)
    other = threading.Thread(target=other_call)
    other.start()
    other.join(2)
    waited = other.is_alive()
    gate.set()
    loader.join(5)
    other.join(5)
    return waited


def tiny_ip_adapter_state_dict(unet, image_embed_dim: int, seed: int = 0) -> dict:
    """IP-Adapter weights for ``unet`` in the original layout diffusers' ``load_ip_adapter`` reads (as diffusers'
    tests build them): ``image_proj.proj`` / ``.norm`` and ``ip_adapter.{1, 3, 5, ...}.to_{k,v}_ip``, one pair per
    cross-attention layer in the U-Net's processor order."""
    from diffusers.models.embeddings import ImageProjection

    torch.manual_seed(seed)
    sd, key_id, widths = {}, 1, unet.config.block_out_channels
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):  # self-attention: no IP-Adapter weights
            continue
        block = name.split(".")[0]
        width = (widths[-1] if block == "mid_block" else list(reversed(widths))[int(name.split(".")[1])]
                 if block == "up_blocks" else widths[int(name.split(".")[1])])
        for kind in ("k", "v"):
            sd[f"ip_adapter.{key_id}.to_{kind}_ip.weight"] = torch.randn(width, unet.config.cross_attention_dim) * 0.5
        key_id += 2
    proj = ImageProjection(image_embed_dim=image_embed_dim, cross_attention_dim=unet.config.cross_attention_dim,
                           num_image_text_embeds=4)
    sd.update({f"image_proj.{k.replace('image_embeds', 'proj')}": v for k, v in proj.state_dict().items()})
    return sd


def save_tiny_ip_adapter(sd_folder: Path, seed: int = 0, encoder_in: str = "ip_adapter") -> Path:
    """An IP-Adapter for the tiny SD folder (``save_tiny_sd``) in diffusers' layout: ``ip_adapter/ip-adapter_sd15.
    safetensors`` and a tiny ``CLIPVisionModelWithProjection`` in ``ENCODER_IN/image_encoder/`` (``encoder_in``:
    "ip_adapter" or "." for the SD folder itself)."""
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    enc = CLIPVisionModelWithProjection(CLIPVisionConfig(hidden_size=D, intermediate_size=64, num_hidden_layers=2,
                                                         num_attention_heads=2, image_size=32, patch_size=8, projection_dim=16))
    enc.save_pretrained(sd_folder / encoder_in / "image_encoder")
    unet = UNet2DConditionModel.from_pretrained(sd_folder / "unet")
    (sd_folder / "ip_adapter").mkdir(exist_ok=True)
    save_file(tiny_ip_adapter_state_dict(unet, 16, seed), sd_folder / "ip_adapter" / "ip-adapter_sd15.safetensors")
    return sd_folder


def free_port() -> int:
    """A TCP port nothing listens on now (for servers the tests start)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
