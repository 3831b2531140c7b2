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


@pytest.fixture(scope="session")
def ray_service():
    """``pmg serve --engine ray``: 2 model replicas of tiny seeded models (``tiny_pmg_by_scenario``) on a
    local Ray, set like test_service's ``client``; started once per session (about 20 s), stopped at its end."""
    pytest.importorskip("ray.serve", reason="the ray engine needs Ray Serve: pip install -e '.[ray]'")
    import ray
    from helpers import free_port, tiny_pmg_by_scenario

    from pmg.ray_init import init_ray
    from pmg.service import ServiceConfig
    from pmg.service.ray_serve import RayServeConfig, RayService

    started = init_ray(None, num_cpus=4)  # two CPUs beyond the replicas': other tests' Ray actors still fit
    service = RayService(tiny_pmg_by_scenario, ServiceConfig(max_batch=8, queue_size=16, timeout_s=60, batch_window_s=0.2),
                         RayServeConfig(replicas=2), port=free_port()).start()
    yield service
    service.stop()
    if started:
        ray.shutdown()


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
