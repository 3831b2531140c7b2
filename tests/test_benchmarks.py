import hashlib
import json

import numpy as np
import pytest

from pmg.behaviours.schema import load_users
from pmg.errors import InputError
from pmg.evaluation.benchmarks.emoticons import build_emoticon_benchmark

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


@pytest.fixture
def art(tmp_path):
    d = tmp_path / "art"
    d.mkdir()
    rng = np.random.default_rng(0)
    meta, imgs = [], []
    for h, label, group, sub in CONCEPTS:
        for style in ("noto", "twemoji", "openmoji"):
            meta.append({"hexcode": h, "emoji": chr(int(h, 16)), "label": label, "tags": [label.split()[0]],
                         "group": group, "subgroup": sub, "style": style, "split": "train"})
            imgs.append(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8))
    np.save(d / "images.npy", np.stack(imgs))
    (d / "meta.jsonl").write_text("\n".join(json.dumps(m) for m in meta) + "\n")
    return d


def _digest(folder):
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(folder)).encode() + p.read_bytes())
    return h.hexdigest()


def test_deterministic_byte_for_byte(art, tmp_path):
    a = build_emoticon_benchmark(art, tmp_path / "a", n_users=60, seed=3)
    b = build_emoticon_benchmark(art, tmp_path / "b", n_users=60, seed=3)
    assert a == b and _digest(tmp_path / "a") == _digest(tmp_path / "b")
    build_emoticon_benchmark(art, tmp_path / "c", n_users=60, seed=4)
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


def test_splits_do_not_leak_users_and_ground_truth_is_personal(art, tmp_path):
    info = build_emoticon_benchmark(art, tmp_path / "bm", n_users=80, seed=0)
    split = json.loads((tmp_path / "bm" / "split.json").read_text())
    sets = [set(split[k]) for k in ("train", "val", "test")]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert sum(map(len, sets)) == info["users"] and len(sets[1]) == len(sets[2]) == round(info["users"] / 10)
    truth = json.loads((tmp_path / "bm" / "ground_truth.json").read_text())
    users = {u.user_id: u for u in load_users(tmp_path / "bm" / "users")}
    assert set(users) == set(truth)
    for uid, t in truth.items():
        u = users[uid]
        assert all(it.attributes["style"] == t["style"] for it in u.history)  # one art style per user
        assert t["target_image"].endswith(f"_{t['style']}.png") and (tmp_path / "bm" / t["target_image"]).is_file()
        if t["theme"] == "cats" and t["mood"] == "happy":
            assert t["target_label"] == "grinning cat"  # the cat lover's own happy emoji
        assert all(it.image.is_file() for it in u.history)


def test_missing_art_is_explained(tmp_path):
    with pytest.raises(InputError, match="build_data"):
        build_emoticon_benchmark(tmp_path / "nope", tmp_path / "out")
