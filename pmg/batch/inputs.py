"""Reading many users for ``pmg batch``: every input is read on its own, so one bad file or line is
recorded and the others go on; each good one gets a key (its behaviours, images, options and models)
and an output folder."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pmg
from pmg.behaviours.schema import UserBehaviours, load_user, parse_json_text, parse_user
from pmg.errors import InputError, PMGError
from pmg.limits import MAX_USER_FILE_BYTES

__all__ = ["BatchInput", "read_inputs", "input_key", "folder_name"]


@dataclass
class BatchInput:
    source: str  # "users/u1.json" or "users.jsonl:12": where a person finds it
    user: UserBehaviours | None = None
    user_id: str | None = None
    error: str | None = None  # why it cannot be generated (then user is None)
    field: str | None = None  # the input field at fault, where known
    key: str = ""  # inputs + options + models: a finished folder with the same key is skipped
    folder: str = ""  # output folder name under DIR/users/


def _failed(source: str, err: PMGError, user_id: str | None = None) -> BatchInput:
    return BatchInput(source, user_id=user_id, error=str(err), field=getattr(err, "field", None))


def _raw_user_id(data) -> str | None:
    uid = data.get("user_id") if isinstance(data, dict) else None
    return uid if isinstance(uid, str) and uid else None


def _file_user_id(path: Path) -> str | None:
    """The user_id of a file that failed validation, when it is readable JSON of a sane size."""
    try:
        if path.stat().st_size <= MAX_USER_FILE_BYTES:
            return _raw_user_id(parse_json_text(path.read_text(encoding="utf-8-sig"), str(path)))
    except (OSError, ValueError, PMGError):
        pass
    return None


def read_inputs(path: str | Path) -> list[BatchInput]:
    """A folder of ``*.json`` user files (sorted by name) or a ``.jsonl`` file, one user a line."""
    path = Path(path)
    out: list[BatchInput] = []
    if path.is_dir():
        files = sorted(path.glob("*.json"))
        if not files:
            raise InputError(f"{path}: no *.json user files in this folder")
        for f in files:
            try:
                user = load_user(f)
                out.append(BatchInput(str(f), user, user.user_id))
            except PMGError as e:
                out.append(_failed(str(f), e, user_id=_file_user_id(f) or f.stem))
    elif path.is_file() and path.suffix == ".jsonl":
        with path.open(encoding="utf-8-sig", errors="replace") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                source, data = f"{path}:{n}", None
                try:
                    data = parse_json_text(line, source)
                    user = parse_user(data, base_dir=path.parent, source=source)
                    out.append(BatchInput(source, user, user.user_id))
                except PMGError as e:
                    out.append(_failed(source, e, user_id=_raw_user_id(data) or f"line-{n}"))
    else:
        raise InputError(f"users not found: {path} (a folder of .json files or a .jsonl file)")
    return out


def _user_fingerprint(user: UserBehaviours) -> dict:
    """The behaviours as JSON with every image replaced by the hash of its bytes (paths move, bytes don't)."""
    data = user.model_dump(mode="json")
    items = [("history", i, it) for i, it in enumerate(user.history)]
    if user.target.item is not None:
        items.append(("target", None, user.target.item))
    for where, i, it in items:
        if it.has_image:
            digest = hashlib.sha256(it.image_bytes()).hexdigest()
            if where == "history":
                data["history"][i]["image"] = digest
            else:
                data["target"]["item"]["image"] = digest
    return data


def input_key(user: UserBehaviours, config, models: dict) -> str:
    """sha256 of the behaviours (image bytes included), the generation options, the models and pmg's version."""
    blob = json.dumps({"user": _user_fingerprint(user), "config": config.to_dict(), "models": models, "pmg": pmg.__version__},
                      sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def folder_name(user_id: str) -> str:
    """A folder name for any user id: safe characters kept, the rest replaced; a short hash of the id is
    added whenever the name had to change (so two ids never share a folder, '../x' never escapes)."""
    name = _UNSAFE.sub("_", user_id)[:80].strip("._") or "user"
    if name != user_id:
        name = f"{name}-{hashlib.sha1(user_id.encode()).hexdigest()[:8]}"
    return name
