import json
import subprocess
import sys

import pytest
from helpers import save_tiny_llama, save_tiny_pmg_mini

from pmg.cli import main
from pmg.scoring.mini_clip import MiniCLIP, MiniCLIPConfig


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    save_tiny_pmg_mini(root / "gen")
    save_tiny_llama(root / "llm")
    import torch

    torch.manual_seed(0)
    MiniCLIP(MiniCLIPConfig(width=8, embed_dim=16)).save_pretrained(root / "scorer")
    return root


@pytest.fixture(scope="module")
def fake_llm_server():
    """An OpenAI-compatible chat endpoint on 127.0.0.1 with scripted answers."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            user = body["messages"][-1]["content"]
            text = "The 5 keywords are: 1. happy; 2. smiling" if "just wrote" in user else "The keywords are: 1. cat; 2. twemoji style"
            data = json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _user(tmp_path, **kw):
    data = {"user_id": "t", "scenario": "emoticon", "history": [{"title": "grinning cat", "attributes": {"style": "twemoji"}}],
            "conversations": ["hi"], "target": {"message": "so happy"}}
    data.update(kw)
    p = tmp_path / "user.json"
    p.write_text(json.dumps(data))
    return p


def _args(models, user, *extra, llm=None):
    return ["generate", str(user), "--llm", llm or str(models / "llm"), "--generator", str(models / "gen"),
            "--scorer", str(models / "scorer"), "--steps", "2", "--no-cache", "--no-progress", *extra]


def test_generate_writes_everything(tiny_models, fake_llm_server, tmp_path, capsys):
    out = tmp_path / "out"
    args = _args(tiny_models, _user(tmp_path), "--out", str(out), "--seed", "5", "--weights", "1:3,3:1", llm=fake_llm_server)
    assert main(args) == 0
    m = json.loads((out / "manifest.json").read_text())
    assert m["seed"] == 5 and len(m["candidates"]) == 2
    assert sorted(m["keywords"]["preference"]) == ["cat", "twemoji style"]
    assert m["keywords"]["target"][:2] == ["happy", "smiling"]  # then the mood's own words fill up to 5
    assert m["models"]["llm"].startswith("openai:")
    for name in ["best.png", "best_large.png", "contact_sheet.png", *[c["file"] for c in m["candidates"]]]:
        assert (out / name).is_file()
    assert "chosen w_p:w_t" in capsys.readouterr().out


def test_bad_weight_grid_is_named(tiny_models, tmp_path, capsys):
    assert main(_args(tiny_models, _user(tmp_path), "--out", str(tmp_path / "o"), "--weights", "1:x")) == 2
    assert "'1:x'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_llama_folder_llm_runs_the_cli(tiny_models, tmp_path):
    """A random tiny Llama answers junk: the run still completes and says what happened."""
    out = tmp_path / "out"
    assert main(_args(tiny_models, _user(tmp_path), "--out", str(out))) == 0
    m = json.loads((out / "manifest.json").read_text())
    assert m["keywords"]["target"] and m["warnings"]


def test_keywords_command_json(tiny_models, tmp_path, capsys):
    assert main(["keywords", str(_user(tmp_path)), "--llm", str(tiny_models / "llm"), "--no-cache", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["prompt_version"] == "emoticon-v2" and res["target"]


@pytest.mark.parametrize(
    "content, message",
    [
        ("{oops", "invalid JSON"),
        ('{"scenario": "cooking", "target": {"message": "x"}}', "scenario"),
        ('{"scenario": "emoticon", "history": [{"title": "a", "image": "nope.png"}], "target": {"message": "x"}}', "history[0].image: file not found"),
    ],
)
def test_bad_input_exits_nonzero_without_traceback(tmp_path, content, message):
    p = tmp_path / "u.json"
    p.write_text(content)
    r = subprocess.run([sys.executable, "-m", "pmg.cli", "generate", str(p), "--out", str(tmp_path / "o")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert message in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "o").exists()  # nothing written


def test_cli_and_api_give_the_same_images(tiny_models, fake_llm_server, tmp_path):
    import numpy as np
    from PIL import Image

    from pmg.api import PMG, GenerationConfig
    from pmg.behaviours.schema import load_user

    user = _user(tmp_path)
    out = tmp_path / "out"
    assert main(_args(tiny_models, user, "--out", str(out), "--seed", "3", llm=fake_llm_server)) == 0
    m = json.loads((out / "manifest.json").read_text())
    pmg = PMG.from_names(fake_llm_server, str(tiny_models / "gen"), str(tiny_models / "scorer"), cache_dir=None)
    res = pmg.generate(load_user(user), GenerationConfig(seed=3, num_inference_steps=2))
    assert res.best == m["best"]
    for c, mc in zip(res.candidates, m["candidates"]):
        assert np.array_equal(np.asarray(c.image), np.asarray(Image.open(out / mc["file"])))


def test_bundled_example_users_by_name(tiny_models, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # from any folder
    assert main(["keywords", "no_such_user", "--llm", str(tiny_models / "llm"), "--scorer", str(tiny_models / "scorer"),
                 "--no-cache"]) == 2
    err = capsys.readouterr().err
    assert "no example user 'no_such_user'" in err and "cat_lover" in err
    out = tmp_path / "o"
    assert main(_args(tiny_models, "cat_lover", "--out", str(out), "--weights", "1:3")) == 0
    assert json.loads((out / "manifest.json").read_text())["user_id"] == "cat_lover"


def test_a_bad_negative_prompt_names_its_option(tiny_models, tmp_path, capsys):
    assert main(_args(tiny_models, _user(tmp_path), "--out", str(tmp_path / "o"), "--negative-prompt", "x" * 100_000)) == 2
    assert "--negative-prompt: a text of at most" in capsys.readouterr().err


def test_serve_without_the_web_stack_names_the_extra(monkeypatch, capsys):
    """After a plain `pip install .` (no fastapi/uvicorn), `pmg serve` says which extra to install."""
    import sys

    from pmg.cli import main

    monkeypatch.setitem(sys.modules, "uvicorn", None)  # importing it raises ImportError
    assert main(["serve", "--no-cache"]) == 2
    err = capsys.readouterr().err
    assert "pip install '.[serve]'" in err and "uvicorn" in err
