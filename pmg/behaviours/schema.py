"""The input: one user's behaviours and a target, as JSON or Python objects (pydantic at the boundary).

    {
      "user_id": "u1",
      "scenario": "emoticon",                      # clothing | movie | emoticon
      "history": [{"title": "grinning cat", "text": "...", "image": "img/cat.png",
                   "attributes": {"style": "twemoji"}}],
      "conversations": ["I love my cat so much"],
      "target": {"message": "I'm so happy today!"}  # or {"item": {...}} for clothing / movie
    }

Image paths are relative to the JSON file. Errors name the bad field (``history[2].image``).
"""

from __future__ import annotations

import json
import re
from enum import Enum
from pathlib import Path
from typing import Optional

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from pmg.errors import InputError
from pmg.limits import (MAX_ATTRIBUTE_KEY_CHARS, MAX_ATTRIBUTE_VALUE_CHARS, MAX_ATTRIBUTES, MAX_IMAGE_PIXELS, MAX_JSON_DEPTH,
                        MAX_MESSAGE_CHARS, MAX_TEXT_CHARS, MAX_TITLE_CHARS, MAX_USER_FILE_BYTES, MAX_USER_ID_CHARS)

__all__ = ["Scenario", "Item", "Target", "UserBehaviours", "load_user", "load_users", "parse_json_text", "check_image"]

# Phrases that address the model instead of describing an item. Matched case-insensitively.
INSTRUCTION_PATTERNS = [
    r"\bignore\s+(all\s+|any\s+)?(the\s+)?(previous|prior|above|earlier)\s+(instructions?|prompts?|messages?)",
    r"\bdisregard\s+(all\s+|the\s+)?(previous|prior|above)",
    r"\bforget\s+(all\s+|everything\s+)?(previous|prior|above|you were told)",
    r"###\s*(human|assistant|system|principle)\s*:",
    r"<\|?(im_start|im_end|system|user|assistant|endoftext)\|?>",
    r"\[/?INST\]",
    r"\byou\s+are\s+now\s+(a|an|the)\b",
    r"\bnew\s+instructions?\s*:",
    r"^\s*(system|assistant)\s*:",
]
_INSTRUCTION_RE = re.compile("|".join(INSTRUCTION_PATTERNS), re.IGNORECASE | re.MULTILINE)


class Scenario(str, Enum):
    clothing = "clothing"
    movie = "movie"
    emoticon = "emoticon"


def find_instruction(text: str) -> str | None:
    """The first phrase in ``text`` that tries to instruct the LLM, or None."""
    m = _INSTRUCTION_RE.search(text or "")
    return m.group(0) if m else None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Item(_Strict):
    title: str = Field(min_length=1, max_length=MAX_TITLE_CHARS)
    text: str = Field(default="", max_length=MAX_TEXT_CHARS)
    image: Optional[Path] = None
    attributes: dict[str, str] = Field(default_factory=dict, max_length=MAX_ATTRIBUTES)
    # an image held in memory (the service decodes base64 uploads; no path ever reaches the server)
    _image_data: Optional[bytes] = PrivateAttr(default=None)

    def with_image_data(self, data: bytes) -> "Item":
        self._image_data = data
        return self

    def image_bytes(self) -> bytes | None:
        """The item's image file contents, from memory or from its path."""
        if self._image_data is not None:
            return self._image_data
        return self.image.read_bytes() if self.image is not None else None

    @property
    def has_image(self) -> bool:
        return self._image_data is not None or self.image is not None

    @field_validator("attributes")
    @classmethod
    def _short_attributes(cls, v: dict[str, str]) -> dict[str, str]:
        for k, val in v.items():
            if len(k) > MAX_ATTRIBUTE_KEY_CHARS or len(val) > MAX_ATTRIBUTE_VALUE_CHARS:
                raise ValueError(f"attribute {k[:MAX_ATTRIBUTE_KEY_CHARS]!r} is too long (keys {MAX_ATTRIBUTE_KEY_CHARS}, "
                                 f"values {MAX_ATTRIBUTE_VALUE_CHARS} characters at most)")
        return v


class Target(_Strict):
    item: Optional[Item] = None
    message: Optional[str] = Field(default=None, max_length=MAX_MESSAGE_CHARS)

    @model_validator(mode="after")
    def _one_of(self) -> "Target":
        if self.item is None and not self.message:
            raise ValueError("the target needs an 'item' (clothing, movie) or a 'message' (emoticon)")
        if self.item is not None and self.message:
            raise ValueError("the target is either an 'item' (clothing, movie) or a 'message' (emoticon), not both")
        return self


class UserBehaviours(_Strict):
    user_id: str = Field(default="user", min_length=1, max_length=MAX_USER_ID_CHARS)
    scenario: Scenario
    # Any length (the file is bounded to 20 MB): the keyword stage reads the paper's window, the last
    # 10 items and the last conversation, so a long-time user is served, not refused.
    history: list[Item] = Field(default_factory=list)
    conversations: list[str] = Field(default_factory=list)
    target: Target

    @field_validator("conversations")
    @classmethod
    def _short_conversations(cls, v: list[str]) -> list[str]:
        for i, c in enumerate(v):
            if len(c) > MAX_TEXT_CHARS:
                raise ValueError(f"conversation {i} has {len(c)} characters; at most {MAX_TEXT_CHARS}")
        return v

    def recent(self, n_items: int = 10, n_conversations: int = 1) -> "UserBehaviours":
        """The paper's window: the last n history items and the last m conversations."""
        return self.model_copy(
            update={
                "history": self.history[-n_items:] if n_items else [],
                "conversations": self.conversations[-n_conversations:] if n_conversations else [],
            }
        )

    def instruction_fields(self) -> list[tuple[str, str]]:
        """(field, phrase) for every text field that tries to instruct the LLM."""
        found = []
        fields = []
        for i, it in enumerate(self.history):
            fields += [(f"history[{i}].title", it.title), (f"history[{i}].text", it.text)]
            fields += [(f"history[{i}].attributes.{k}", v) for k, v in it.attributes.items()]
        fields += [(f"conversations[{i}]", c) for i, c in enumerate(self.conversations)]
        if self.target.item:
            fields += [("target.item.title", self.target.item.title), ("target.item.text", self.target.item.text)]
        if self.target.message:
            fields.append(("target.message", self.target.message))
        for name, text in fields:
            if (phrase := find_instruction(text)) is not None:
                found.append((name, phrase))
        return found


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def format_validation_error(err: ValidationError, source: str) -> str:
    """One line for one problem ("user.json: target: ..."), else a line per problem."""
    problems = []
    for e in err.errors():
        got = e.get("input")
        shown = "" if isinstance(got, (dict, list)) else f" (got {str(got)[:60]!r})"
        problems.append(f"{_loc(e['loc'])}: {e['msg'].removeprefix('Value error, ')}{shown}")
    if len(problems) == 1:
        return f"{source}: {problems[0]}"
    return "\n".join([f"{source}: {len(problems)} problems in the behaviours file:"] + [f"  - {p}" for p in problems])


def parse_user(data: dict, base_dir: Path | None = None, source: str = "<input>") -> UserBehaviours:
    """Validate a dict; resolve image paths against ``base_dir`` and check they are images."""
    if not isinstance(data, dict):
        raise InputError(f"{source}: expected a JSON object at the top level, got {type(data).__name__}")
    try:
        user = UserBehaviours.model_validate(data)
    except ValidationError as err:
        raise InputError(format_validation_error(err, source), field=_loc(err.errors()[0]["loc"])) from None
    items = [(f"history[{i}]", it) for i, it in enumerate(user.history)]
    if user.target.item:
        items.append(("target.item", user.target.item))
    for name, it in items:
        if it.image is not None:
            path = it.image if it.image.is_absolute() or base_dir is None else base_dir / it.image
            it.image = path
            try:
                check_image(path, f"{source}: {name}.image")
            except InputError as e:
                e.field = f"{name}.image"
                raise
    if user.scenario != Scenario.emoticon and user.target.item is None:
        raise InputError(f"{source}: target.item is required for the {user.scenario.value} scenario", field="target.item")
    return user


def check_image(path: Path | bytes, where: str) -> None:
    """A readable image of at most ``MAX_IMAGE_PIXELS``, checked from its header before decoding."""
    import io

    from PIL import Image, UnidentifiedImageError

    if isinstance(path, (bytes, bytearray)):
        source, path = io.BytesIO(path), "the image"
    elif not path.is_file():
        raise InputError(f"{where}: file not found: {path}")
    else:
        source = path
    try:
        with Image.open(source) as im:
            w, h = im.size
            if w * h > MAX_IMAGE_PIXELS:
                raise InputError(f"{where}: {path} is {w}x{h} pixels; at most {MAX_IMAGE_PIXELS:,} pixels")
            im.verify()
    except InputError:
        raise
    except Image.DecompressionBombError:
        raise InputError(f"{where}: {path} promises more than {MAX_IMAGE_PIXELS:,} pixels (a decompression bomb?)") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise InputError(f"{where}: {path} is not a readable image ({e.__class__.__name__})") from None


def load_users(path: str | Path) -> list[UserBehaviours]:
    """Many users: a folder of ``*.json`` files (sorted by name) or a ``.jsonl`` file, one user a line."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.json"))
        if not files:
            raise InputError(f"{path}: no *.json user files in this folder")
        return [load_user(f) for f in files]
    if path.suffix == ".jsonl" and path.is_file():
        users = []
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            data = parse_json_text(line, f"{path}:{n}")
            users.append(parse_user(data, base_dir=path.parent, source=f"{path}:{n}"))
        return users
    raise InputError(f"users not found: {path} (a folder of .json files or a .jsonl file)")


def load_user(path: str | Path) -> UserBehaviours:
    """Read and validate a behaviours JSON file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"behaviours file not found: {path}")
    if path.stat().st_size > MAX_USER_FILE_BYTES:
        raise InputError(f"{path}: {path.stat().st_size} bytes is too large for a behaviours file "
                         f"({MAX_USER_FILE_BYTES // 2**20} MB at most)")
    try:
        text = path.read_text(encoding="utf-8-sig")  # a UTF-8 byte-order mark is accepted, as most tools do
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror})") from None
    return parse_user(parse_json_text(text, str(path)), base_dir=path.parent, source=str(path))


def parse_json_text(text: str, source: str) -> object:
    """JSON text -> Python, with errors that name the place (nesting over ``MAX_JSON_DEPTH`` levels is refused)."""
    depth = 0
    in_str = esc = False
    for ch in text:  # a cheap scan: json.loads would hit Python's recursion limit on 50,000-deep input
        if in_str:
            esc, in_str = (False, True) if esc else (ch == "\\", ch != '"')
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise InputError(f"{source}: JSON nested more than {MAX_JSON_DEPTH} levels deep")
        elif ch in "]}":
            depth -= 1
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{source}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    except RecursionError:
        raise InputError(f"{source}: JSON nested too deeply") from None
