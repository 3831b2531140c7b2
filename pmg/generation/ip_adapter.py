"""IP-Adapter: pictures in a Stable Diffusion 1.x generator's conditions (decoupled cross-attention).

A Stable Diffusion folder takes image prompts when it holds an IP-Adapter in diffusers' format::

    SD_FOLDER/ip_adapter/ip-adapter_sd15.safetensors   (or .bin; or the folder's only weights file)
    SD_FOLDER/ip_adapter/image_encoder/                 (CLIPVisionModelWithProjection; or SD_FOLDER/image_encoder/)

as ``StableDiffusionPipeline.load_ip_adapter(SD_FOLDER, subfolder="ip_adapter", weight_name=...)`` reads
it (h94/IP-Adapter's ``models/`` folder has this layout). diffusers' own loader puts the weights into the
U-Net; PMG then takes the adapter's image projection out of the U-Net, so that it can weight the image
tokens per candidate (``w_t`` on the target's pictures, ``w_p`` on the history's, as the keyword windows)
before they reach the attention, and swaps diffusers' processors for ``ImageTokensAttnProcessor``.

The image tokens reach the attention as diffusers passes them, ``encoder_hidden_states = (text, [tokens])``,
in a key/value stream of their own: never joined to the text context. An all-zero image token is an
absent one (a zero-weighted side, padding between users, the unconditional rows of guidance): so 0:4
is exactly the target-only image, and a picture-less call is exactly Stable Diffusion without the adapter.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers.models.attention_processor import IPAdapterAttnProcessor2_0

from pmg.errors import ModelLoadError

__all__ = ["IP_ADAPTER_FOLDER", "IP_ADAPTER_WEIGHTS", "ImageTokensAttnProcessor", "CLIPImageEmbedder",
           "has_image_stream", "adopt_ip_adapter", "load_ip_adapter", "ip_adapter_weights", "load_ip_adapter_folder"]

IP_ADAPTER_FOLDER = "ip_adapter"  # in a Stable Diffusion folder
IP_ADAPTER_WEIGHTS = ("ip-adapter_sd15.safetensors", "ip-adapter_sd15.bin")  # looked for first, in this order
IMAGE_ENCODER_FOLDER = "image_encoder"  # in the IP-Adapter folder, else in the Stable Diffusion folder


class ImageTokensAttnProcessor(IPAdapterAttnProcessor2_0):
    """diffusers' IP-Adapter attention (text and image tokens attended separately, the image branch added
    times ``scale``) in which an all-zero image token is absent.

    ``to_k_ip`` and ``to_v_ip`` have no bias, so a zero token's key and value are zero: left among other
    tokens it would still take a share of their softmax. Rows are therefore grouped by which tokens they
    carry and each group attends to its own tokens only (diffusers' processor, on that group's rows). A
    row without any gets a single zero token, whose value is zero: its image branch adds exactly 0.

    ``encoder_hidden_states``: ``(text (B, T, D), [image tokens (B, T_img, D)])``, or the text alone.
    """

    @classmethod
    def from_diffusers(cls, proc: IPAdapterAttnProcessor2_0) -> "ImageTokensAttnProcessor":
        if len(proc.num_tokens) != 1:
            raise ValueError(f"one IP-Adapter at a time, got {len(proc.num_tokens)}")
        new = cls(proc.hidden_size, proc.cross_attention_dim, proc.num_tokens, proc.scale)
        weight = proc.to_k_ip[0].weight
        new.load_state_dict(proc.state_dict())
        return new.to(weight.device, weight.dtype)

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, scale=1.0,
                 ip_adapter_masks=None):
        if ip_adapter_masks is not None:
            raise ValueError("ImageTokensAttnProcessor takes no ip_adapter_masks (a zero image token is an absent one)")
        if isinstance(encoder_hidden_states, tuple):
            text, (tokens,) = encoder_hidden_states
        else:  # text alone (soft-embedding training, a picture-less batch): no image tokens
            text = encoder_hidden_states
            tokens = text.new_zeros(text.shape[0], 1, text.shape[2])
        present = tokens.ne(0).any(-1)  # (B, T_img)
        if bool(present.all()):
            return super().__call__(attn, hidden_states, (text, [tokens]), attention_mask, temb)
        patterns, group = torch.unique(present.to(torch.uint8), dim=0, return_inverse=True)
        out = None
        for g, keep in enumerate(patterns.bool()):
            rows = (group == g).nonzero().squeeze(1)
            cols = keep.nonzero().squeeze(1) if bool(keep.any()) else rows.new_zeros(1)  # none: one zero token
            part = super().__call__(attn, hidden_states[rows], (text[rows], [tokens[rows][:, cols]]),
                                    None if attention_mask is None else attention_mask[rows],
                                    None if temb is None else temb[rows])
            if out is None:
                out = part.new_empty((len(present),) + tuple(part.shape[1:]))
            out[rows] = part
        return out


class CLIPImageEmbedder(torch.nn.Module):
    """Pictures -> (n, E) image embeddings (float32, on the CPU) with IP-Adapter's image encoder: a
    ``CLIPVisionModelWithProjection`` and its ``CLIPImageProcessor``."""

    def __init__(self, model, processor):
        super().__init__()
        self.model, self.processor = model.eval().requires_grad_(False), processor

    @property
    def embed_dim(self) -> int:
        return self.model.config.projection_dim

    @torch.no_grad()
    def forward(self, images) -> torch.Tensor:
        pixels = self.processor(images=[im.convert("RGB") for im in images], return_tensors="pt")["pixel_values"]
        return self.model(pixel_values=pixels.to(self.model.device, self.model.dtype)).image_embeds.float().cpu()


def has_image_stream(unet) -> bool:
    """Whether ``unet`` attends to image tokens in a stream of their own (``adopt_ip_adapter`` ran on it). A
    U-Net that diffusers' ``load_ip_adapter`` left as it was is refused: ``adopt_ip_adapter`` prepares it."""
    if getattr(unet.config, "encoder_hid_dim_type", None) == "ip_image_proj":
        raise ValueError("the U-Net carries an IP-Adapter as diffusers loads it: pass it through "
                         "pmg.generation.ip_adapter.adopt_ip_adapter (which returns its image_proj) first")
    return any(isinstance(p, ImageTokensAttnProcessor) for p in getattr(unet, "attn_processors", {}).values())


def adopt_ip_adapter(unet):
    """Take a diffusers-loaded IP-Adapter's image projection out of ``unet`` (which then takes the image tokens
    themselves, in ``(text, [tokens])``) and swap its IP-Adapter processors for ``ImageTokensAttnProcessor``.

    Returns the projection (diffusers' ``ImageProjection``: (n, E) image embeddings -> (n, 4, D) tokens), in
    float32. IP-Adapters whose projection reads the image encoder's hidden states (Plus, Full, FaceID) are
    refused: PMG's pictures come as image embeddings."""
    from diffusers.models.embeddings import ImageProjection, MultiIPAdapterImageProjection

    hid = unet.encoder_hid_proj
    if not isinstance(hid, MultiIPAdapterImageProjection) or len(hid.image_projection_layers) != 1:
        raise ValueError("the U-Net carries no IP-Adapter (or several): load one with diffusers' load_ip_adapter first")
    proj = hid.image_projection_layers[0]
    if not isinstance(proj, ImageProjection):
        raise ValueError(f"an IP-Adapter whose projection is {type(proj).__name__} reads the image encoder's hidden "
                         "states; PMG takes those that read image embeddings (ip-adapter_sd15, ip-adapter_sd15_light)")
    procs = {name: ImageTokensAttnProcessor.from_diffusers(p) if isinstance(p, IPAdapterAttnProcessor2_0) else p
             for name, p in unet.attn_processors.items()}
    unet.set_attn_processor(procs)
    unet.encoder_hid_proj = None  # the U-Net's text path as without the adapter: nothing projects its inputs
    unet.config.encoder_hid_dim_type = None
    return proj.float().eval().requires_grad_(False)


def load_ip_adapter(unet, weights: str | Path):
    """An IP-Adapter weights file (diffusers' format) into ``unet`` with diffusers' own loader, adopted for PMG
    (``adopt_ip_adapter``). Returns the image projection."""
    from diffusers.loaders import IPAdapterMixin

    class _UNetOnly(IPAdapterMixin):  # diffusers' loader reads ``self.unet``; no image encoder is attached here
        def __init__(self, unet):
            self.unet = unet

    weights = Path(weights)
    _UNetOnly(unet).load_ip_adapter(str(weights.parent), subfolder=None, weight_name=weights.name,
                                    image_encoder_folder=None, local_files_only=True)
    return adopt_ip_adapter(unet)


def ip_adapter_weights(folder: Path) -> Path:
    """The IP-Adapter weights file in ``folder``: ``IP_ADAPTER_WEIGHTS`` first, else the only ``.safetensors``
    or ``.bin`` file."""
    for name in IP_ADAPTER_WEIGHTS:
        if (folder / name).is_file():
            return folder / name
    found = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in (".safetensors", ".bin"))
    if len(found) != 1:
        raise ModelLoadError(f"{folder}: expected {IP_ADAPTER_WEIGHTS[0]} (or {IP_ADAPTER_WEIGHTS[1]}, or one weights "
                             f"file), found {', '.join(p.name for p in found) or 'none'}")
    return found[0]


def load_image_encoder(folder: Path, dtype: torch.dtype = torch.float32) -> CLIPImageEmbedder:
    """A ``CLIPVisionModelWithProjection`` folder, with its own ``preprocessor_config.json`` or, as diffusers
    does for IP-Adapter, a ``CLIPImageProcessor`` at the model's image size."""
    from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

    model = CLIPVisionModelWithProjection.from_pretrained(folder, dtype=dtype, local_files_only=True)
    if (folder / "preprocessor_config.json").is_file():
        processor = CLIPImageProcessor.from_pretrained(folder, local_files_only=True)
    else:
        size = model.config.image_size
        processor = CLIPImageProcessor(size=size, crop_size=size)
    return CLIPImageEmbedder(model, processor)


def load_ip_adapter_folder(folder: Path, unet, dtype: torch.dtype = torch.float32):
    """(image encoder, image projection) of a Stable Diffusion folder's ``ip_adapter/`` (its weights loaded into
    ``unet``); a ``ModelLoadError`` naming the folder when a part is missing or does not load."""
    sub = Path(folder) / IP_ADAPTER_FOLDER
    weights = ip_adapter_weights(sub)
    enc_dir = next((d for d in (sub / IMAGE_ENCODER_FOLDER, Path(folder) / IMAGE_ENCODER_FOLDER)
                    if (d / "config.json").is_file()), None)
    if enc_dir is None:
        raise ModelLoadError(f"{sub}: no image encoder (a CLIPVisionModelWithProjection folder in "
                             f"{sub / IMAGE_ENCODER_FOLDER} or {Path(folder) / IMAGE_ENCODER_FOLDER})")
    try:
        encoder = load_image_encoder(enc_dir, dtype)
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        raise ModelLoadError(f"{enc_dir}: the IP-Adapter's image encoder does not load: {e}") from None
    from safetensors import SafetensorError

    try:
        proj = load_ip_adapter(unet, weights)
    except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as e:  # unreadable, keys missing, wrong shapes
        raise ModelLoadError(f"{weights}: not IP-Adapter weights for this U-Net: {e.__class__.__name__}: {e}") from None
    if proj.image_embeds.in_features != encoder.embed_dim:
        raise ModelLoadError(f"{weights}: the projection reads {proj.image_embeds.in_features}-wide image embeddings, "
                             f"the image encoder in {enc_dir} gives {encoder.embed_dim}")
    return encoder, proj
