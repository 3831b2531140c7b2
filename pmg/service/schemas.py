"""The service's request and response bodies (pydantic, shown in the OpenAPI schema at /docs).

The user part is the library's behaviours schema (``pmg.behaviours.schema``), except that history
images come as base64 data (never as paths: a request never reaches the server's file system) and every
list is bounded; the options are ``GenerationConfig``'s fields. Bounds come from ``pmg.limits``."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import typing
from typing import Annotated, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from pmg.config import OPTION_NAMES, GenerationConfig
from pmg.behaviours.schema import Item, Scenario, Target, UserBehaviours, check_image
from pmg.errors import InputError, PMGError
from pmg.limits import (MAX_CONVERSATIONS, MAX_EDITED_KEYWORD_CHARS, MAX_EDITED_PREFERENCE, MAX_EDITED_TARGET, MAX_GRID,
                        MAX_HISTORY_ITEMS, MAX_IMAGE_BYTES, OPTION_BOUNDS)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ItemIn(Item):
    """An item as the library reads it, its image inline."""

    image: Optional[str] = Field(default=None, max_length=4 * MAX_IMAGE_BYTES // 3 + 100,
                                 description="a PNG or JPEG as base64 (a data: URL is fine); never a path")


class TargetIn(Target):
    item: Optional[ItemIn] = None


def _option_field(f: dataclasses.Field, annotation):
    """One ``GenerationConfig`` field as a request option: its default, its bounds from ``pmg.limits``."""
    bounds = OPTION_BOUNDS.get(f.name)
    extra = {} if bounds is None else {"ge": bounds[0], "le": bounds[1]}
    if f.name == "weights":
        extra["max_length"] = MAX_GRID
    if annotation in (float, float | None):
        extra["allow_inf_nan"] = False
    return annotation, Field(default=f.default, description=f.metadata.get("help"), **extra)


def _to_config(self) -> GenerationConfig:
    return GenerationConfig.from_options(**self.model_dump(exclude_unset=False))


def _check_options(self):
    """The library's own checks (e.g. weightings x noises within the grid's bound), at the boundary."""
    try:
        self.to_config()
    except PMGError as e:
        raise ValueError(str(e)) from None
    return self


_hints = typing.get_type_hints(GenerationConfig)
# the request's options are GenerationConfig's fields under the option names the CLI uses
OptionsIn = create_model(
    "OptionsIn", __base__=_Strict, __doc__="Generation options: ``GenerationConfig``'s fields ('steps', 'guidance').",
    __validators__={"_library_checks": model_validator(mode="after")(_check_options)},
    **{OPTION_NAMES.get(f.name, f.name): _option_field(f, _hints[f.name]) for f in dataclasses.fields(GenerationConfig)},
)
OptionsIn.to_config = _to_config


EditedKeyword = Annotated[str, Field(max_length=MAX_EDITED_KEYWORD_CHARS)]


class KeywordsIn(_Strict):
    """Keywords to generate with instead of asking the LLM (edited on the page)."""

    preference: list[EditedKeyword] = Field(default_factory=list, max_length=MAX_EDITED_PREFERENCE)
    target: list[EditedKeyword] = Field(min_length=1, max_length=MAX_EDITED_TARGET)


class UserIn(UserBehaviours):
    """The library's behaviours, images inline and every list bounded."""

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


class PictureOut(BaseModel):
    role: Literal["history", "target"] = Field(description="which condition the picture went into")
    sha256_16: str = Field(description="the picture's content hash (as the manifest records it)")
    source: str = Field(description="history[i], target.item, or gallery:FILE")
    caption: Optional[str] = None
    png: str = Field(description="the picture as base64 PNG")


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
    pictures: list[PictureOut] = Field(default_factory=list, description="the image prompts that went in")


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
        out = Item(title=it.title, text=it.text, attributes=it.attributes)
        return out.with_image_data(decode_image(it.image, f"{where}.image")) if it.image else out

    history = [item(it, f"history[{i}]") for i, it in enumerate(body.history)]
    # the same fields UserIn has just validated with the same rules: these cannot fail
    target = Target(message=body.target.message, item=item(body.target.item, "target.item") if body.target.item else None)
    user = UserBehaviours(user_id=body.user_id, scenario=body.scenario, history=history,
                          conversations=body.conversations, target=target)
    if user.scenario != Scenario.emoticon and user.target.item is None:
        raise InputError(f"target.item is required for the {user.scenario.value} scenario")
    return user
