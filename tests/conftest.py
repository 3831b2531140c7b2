import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
torch.set_num_threads(int(os.environ.get("PMG_THREADS", "2")))

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def tiny_pipe():
    from helpers import tiny_pipeline

    return tiny_pipeline(0)


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def art(tmp_path):
    """A tiny emoji-art folder in build_data's format: CONCEPTS x 3 styles, random 16 px images."""
    import json

    import numpy as np
    from helpers import CONCEPTS

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

try:  # property-based tests: reproducible examples in CI (random ones in a developer's runs find new cases)
    from hypothesis import settings as _hyp_settings

    _hyp_settings.register_profile("ci", derandomize=True)
    if os.environ.get("CI"):
        _hyp_settings.load_profile("ci")
except ImportError:
    pass
