"""The service's request and response bodies (pydantic, shown in the OpenAPI schema at /docs).

The user part is the CLI's user schema, except that history images come as base64 data (never as
paths: a request never reaches the server's file system) and every list is bounded."""

from __future__ import annotations

import base64
import binascii
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pmg.behaviours.schema import MAX_TEXT_CHARS, MAX_TITLE_CHARS, Item, Scenario, Target, UserBehaviours, check_image
from pmg.errors import InputError
from pmg.limits import MAX_GRID, MAX_GUIDANCE, MAX_SEED, MAX_STEPS

MAX_IMAGE_BYTES = 2 * 1024 * 1024
MAX_HISTORY_ITEMS = 100
MAX_CONVERSATIONS = 20


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ItemIn(_Strict):
    title: str = Field(min_length=1, max_length=MAX_TITLE_CHARS)
    text: str = Field(default="", max_length=MAX_TEXT_CHARS)
    attributes: dict[str, str] = Field(default_factory=dict, max_length=30)
    image: Optional[str] = Field(default=None, max_length=4 * MAX_IMAGE_BYTES // 3 + 100,
                                 description="a PNG or JPEG as base64 (a data: URL is fine); never a path")


class TargetIn(_Strict):
    item: Optional[ItemIn] = None
    message: Optional[str] = Field(default=None, max_length=2000)


class OptionsIn(_Strict):
    seed: int = Field(default=0, ge=0, le=MAX_SEED)
    alpha: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)  # None: the generator's own
    weights: Optional[list[tuple[float, float]]] = Field(default=None, min_length=1, max_length=MAX_GRID)  # None: the generator's own
    steps: Optional[int] = Field(default=None, ge=1, le=MAX_STEPS)
    guidance: float = Field(default=4.0, ge=0, le=MAX_GUIDANCE, allow_inf_nan=False)
    use_keywords: bool = True
    use_soft: bool = True
    weighting: Literal["embedding", "guidance"] = "embedding"
    noises: Optional[int] = Field(default=None, ge=1, le=MAX_GRID)  # None: the generator's own


class KeywordsIn(_Strict):
    """Keywords to generate with instead of asking the LLM (edited on the page)."""

    preference: list[str] = Field(default_factory=list, max_length=10)
    target: list[str] = Field(min_length=1, max_length=5)


class UserIn(_Strict):
    user_id: str = Field(default="user", min_length=1, max_length=200)
    scenario: Scenario
    history: list[ItemIn] = Field(default_factory=list, max_length=MAX_HISTORY_ITEMS)
    conversations: list[str] = Field(default_factory=list, max_length=MAX_CONVERSATIONS)
    target: TargetIn


class GenerateIn(UserIn):
    options: OptionsIn = Field(default_factory=OptionsIn)
    keywords: Optional[KeywordsIn] = None


class CandidateOut(BaseModel):
    w_p: float
    w_t: float
    noise: int = Field(default=0, description="which initial noise (options.noises)")
    d_p: Optional[float]
    d_t: float
    z: float
    png: str = Field(description="the image as base64 PNG")


class KeywordsOut(BaseModel):
    preference: list[str]
    target: list[str]
    cached: bool = False
    model: str = ""
    warnings: list[str] = []


class GenerateOut(BaseModel):
    user_id: str
    keywords: KeywordsOut
    candidates: list[CandidateOut]
    best: int
    timings: dict[str, float]
    manifest: dict


class JobOut(BaseModel):
    id: str
    status: Literal["queued", "keywords", "generating", "done", "failed", "cancelled"]
    progress: float = Field(description="0 to 1")
    result: Optional[GenerateOut] = None
    error: Optional[str] = None


class ErrorOut(BaseModel):
    detail: str


def decode_image(data: str, where: str) -> bytes:
    """base64 (or a data: URL) -> image bytes, size- and pixel-checked; paths are refused."""
    if data.startswith("data:"):
        data = data.split(",", 1)[-1]
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InputError(f"{where}: not base64 image data (paths and URLs are not accepted)") from None
    if len(raw) > MAX_IMAGE_BYTES:
        raise InputError(f"{where}: {len(raw)} bytes; at most {MAX_IMAGE_BYTES}")
    check_image(raw, where)
    return raw


def to_behaviours(body: UserIn) -> UserBehaviours:
    """The library's ``UserBehaviours`` with images decoded in memory; errors name the field."""
    def item(it: ItemIn, where: str) -> Item:
        try:
            out = Item(title=it.title, text=it.text, attributes=it.attributes)
        except ValidationError as e:
            raise InputError(f"{where}.{'.'.join(str(x) for x in e.errors()[0]['loc'])}: {e.errors()[0]['msg']}") from None
        return out.with_image_data(decode_image(it.image, f"{where}.image")) if it.image else out

    from pmg.behaviours.schema import format_validation_error

    history = [item(it, f"history[{i}]") for i, it in enumerate(body.history)]
    try:
        target = Target(message=body.target.message, item=item(body.target.item, "target.item") if body.target.item else None)
    except ValidationError as e:
        raise InputError(f"target: {e.errors()[0]['msg']}") from None
    try:
        user = UserBehaviours(user_id=body.user_id, scenario=body.scenario, history=history,
                              conversations=body.conversations, target=target)
    except ValidationError as e:
        raise InputError(format_validation_error(e, "request").replace("\n", " ")) from None
    if user.scenario != Scenario.emoticon and user.target.item is None:
        raise InputError(f"target.item is required for the {user.scenario.value} scenario")
    return user
