"""End to end in headless Chromium (Debian's chromium + chromedriver, driven by Selenium): the real
server with the shipped models, the page, an example user, a generation, the a slider."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = _free_port()
    cache = tmp_path_factory.mktemp("cache")
    env = dict(os.environ, PMG_CACHE_DIR=str(cache))
    proc = subprocess.Popen([sys.executable, "-m", "pmg.cli", "serve", "--port", str(port), "--threads", "2"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            if urllib.request.urlopen(url + "/v1/health", timeout=2).status == 200:
                break
        except OSError:
            pass
        if proc.poll() is not None:
            pytest.fail(proc.stderr.read().decode()[-2000:])
        time.sleep(0.5)
    yield url
    proc.terminate()
    proc.wait(timeout=30)


@pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs Debian's chromium and chromium-driver")
def test_page_generates_and_reranks(server, repo):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1100,1500"):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    try:
        driver.get(server + "/")
        wait = WebDriverWait(driver, 180)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "[data-example='cat_lover']"))
        driver.find_element(By.CSS_SELECTOR, "[data-example='cat_lover']").click()
        assert len(driver.find_elements(By.CSS_SELECTOR, "#history li")) == 7
        driver.find_element(By.ID, "generate").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#grid .cand")) == 5)
        assert len(driver.find_elements(By.CSS_SELECTOR, "#grid .cand.chosen")) == 1
        assert "cat" in driver.find_element(By.ID, "kw-pref").get_attribute("value")

        def ranking():
            zs = [float(e.text) for e in driver.find_elements(By.CSS_SELECTOR, "#grid .cand .z")]
            chosen = int(driver.find_element(By.CSS_SELECTOR, "#grid .cand.chosen").get_attribute("data-index"))
            return zs, chosen

        from pmg.registry import models_dir

        default_alpha = json.loads((models_dir() / "pmg-mini" / "model_index.json").read_text()).get("default_alpha", 0.5)
        assert float(driver.find_element(By.ID, "alpha").get_attribute("value")) == default_alpha  # from /v1/models
        before, chosen_before = ranking()
        assert chosen_before == before.index(max(before))
        slider = driver.find_element(By.ID, "alpha")
        driver.execute_script("arguments[0].value = 1; arguments[0].dispatchEvent(new Event('input'));", slider)
        after, chosen_after = ranking()
        assert after != before  # re-ranked on the page, without a new request
        assert chosen_after == after.index(max(after))
        driver.execute_script(f"arguments[0].value = {default_alpha}; arguments[0].dispatchEvent(new Event('input'));", slider)
        if os.environ.get("PMG_SCREENSHOT_DIR"):  # PMG_SCREENSHOT_DIR=docs regenerates the README's picture
            driver.save_screenshot(str(Path(os.environ["PMG_SCREENSHOT_DIR"]) / "service_page.png"))
    finally:
        driver.quit()
