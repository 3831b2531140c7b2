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
