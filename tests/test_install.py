"""``pip install .`` (not editable): the installed package generates and serves from any folder.

The wheel is built from a copy of the source (no build folders in the checkout) and installed without
dependencies into a fresh virtual environment that borrows this environment's installed libraries
through a ``.pth`` file (a full install would download torch again); the command runs in a temporary
folder, so nothing can come from the checkout.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src"
    src.mkdir()
    shutil.copy(ROOT / "pyproject.toml", src)
    shutil.copy(ROOT / "README.md", src)
    for name in ("pmg", "models", "examples"):
        shutil.copytree(ROOT / name, src / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    run = dict(check=True, capture_output=True, text=True, timeout=600)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp / "whl"), str(src)], **run)
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], **run)
    py = venv / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], **run).stdout.strip()
    # this environment's libraries (torch, transformers, ...), after the venv's own site-packages
    Path(site, "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    wheel = next((tmp / "whl").glob("pmg-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps", str(wheel)], **run)
    return venv


def _in_venv(venv: Path, code: str, cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PMG_MODELS_DIR")}
    r = subprocess.run([str(venv / "bin" / "python"), "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


def test_installed_package_carries_models_examples_and_page(installed, tmp_path):
    out = _in_venv(installed, "import pmg, pmg.bundled as b, pmg.service.app as a; "
                              "print(pmg.__file__); print(b.models_dir()); print(b.example_user('cat_lover')); print(a.STATIC)", tmp_path)
    lines = out.split()
    assert all(line.startswith(str(installed)) for line in lines), out  # nothing from the checkout
    assert _in_venv(installed, "import pmg.bundled as b; print(sorted(p.name for p in b.models_dir().iterdir()))", tmp_path).strip() \
        == "['pmg-mini', 'pmg-mini-fashion']"


def test_installed_serve_answers_the_page_and_examples(installed, tmp_path):
    code = """
from fastapi.testclient import TestClient
from pmg.service.app import create_app
def load():
    raise RuntimeError("models are not needed for the page")
with TestClient(create_app(load)) as c:
    page, js, css, ex = c.get("/"), c.get("/static/app.js"), c.get("/static/style.css"), c.get("/v1/examples")
    print(page.status_code, js.status_code, css.status_code, "<html" in page.text.lower(), ex.status_code, sorted(ex.json()) if ex.status_code == 200 else ex.text)
    import base64
    print(base64.b64decode(ex.json()["rail_fan"]["history"][0]["image"])[:4] == b"\\x89PNG")
"""
    assert _in_venv(installed, code, tmp_path).strip().splitlines() == [
        "200 200 200 True 200 ['cat_lover', 'clothing_shopper', 'dog_lover', 'movie_fan', 'rail_fan', 'stripes_shopper']",
        "True"]  # the examples' pictures ship with the package, inline as base64


@pytest.mark.slow
def test_installed_pmg_generate_runs_from_any_folder(installed, tmp_path):
    user = _in_venv(installed, "import pmg.bundled as b; print(b.example_user('cat_lover'))", tmp_path).strip()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PMG_MODELS_DIR")}
    env["PMG_CACHE_DIR"] = str(tmp_path / "cache")
    r = subprocess.run([str(installed / "bin" / "pmg"), "generate", user, "--out", "out", "--threads", os.environ.get("PMG_THREADS", "2")],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "out" / "best.png").is_file() and (tmp_path / "out" / "manifest.json").is_file()
    assert "Loading weights" not in r.stderr and "Warning" not in r.stderr, r.stderr  # no third-party noise
