"""Chapter 0 in a real browser: JupyterLab serves it, headless Chromium runs every cell, the
widget renders, and dragging its slider changes what it shows.

Needs Debian's ``chromium`` (driven by Playwright through ``executable_path``; Playwright never
downloads a browser here). Without it the test is skipped — unless ``COURSE_REQUIRE_BROWSER=1``
(set by ``.ci/run``), where a missing browser is a failure.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from course_lib import _notebooks

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path: Path):
    """A JupyterLab server on 127.0.0.1 serving a scratch copy of chapter 0; yields its URL."""
    if CHROMIUM is None:
        if os.environ.get("COURSE_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium is not installed (apt-get install chromium), and COURSE_REQUIRE_BROWSER=1")
        pytest.skip("chromium is not installed; `apt-get install chromium` to run the browser test")
    shutil.copy(_notebooks.NOTEBOOKS / "00_start_here.ipynb", tmp_path)
    port, token = _free_port(), secrets.token_hex(16)
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--ServerApp.port={port}",
           "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp_path}",
           "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    log = open(tmp_path / "lab.log", "w")
    server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg")})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("JupyterLab did not start:\n" + (tmp_path / "lab.log").read_text())
                time.sleep(0.5)
        yield f"{base}/lab/tree/00_start_here.ipynb?token={token}"
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def test_chapter_zero_runs_and_its_widget_responds(lab: str, tmp_path: Path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(lab)
        page.wait_for_selector(".jp-Notebook", timeout=60_000)
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=60_000)
        page.click("li.lm-MenuBar-item:has-text('Run')")
        page.click("li.lm-Menu-item:has-text('Run All Cells')")
        caption = page.locator(".widget-html pre").first
        caption.wait_for(timeout=120_000)
        page.locator("img.widget-image").first.wait_for(timeout=30_000)
        # Wait until every cell has run: the last code cell shows the exercise verdict.
        page.wait_for_selector("text=not attempted yet", timeout=120_000)
        before_caption = caption.inner_text()
        before_image = page.locator("img.widget-image").first.get_attribute("src")
        assert "T = 1.00" in before_caption, before_caption

        handle = page.locator(".widget-slider .noUi-handle").first
        handle.scroll_into_view_if_needed()
        box = handle.bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.mouse.down()
        page.mouse.move(box["x"] + 250, box["y"] + box["height"] / 2, steps=10)
        page.mouse.up()
        page.wait_for_function("(before) => document.querySelector('.widget-html pre').innerText !== before",
                               arg=before_caption, timeout=30_000)
        after_caption = caption.inner_text()
        page.wait_for_function("(before) => document.querySelector('img.widget-image').src !== before",
                               arg=before_image, timeout=30_000)
        page.screenshot(path=str(tmp_path / "chapter0.png"))
        browser.close()
    assert after_caption != before_caption and "T = 1.00" not in after_caption
