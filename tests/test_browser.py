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
    # JupyterLab 4 renders only the cells near the viewport ("windowing"); a widget scrolled out
    # of view is detached and never "visible". Render every cell, as a reader scrolling would.
    settings = tmp_path / "cfg" / "lab" / "user-settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    (settings / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    port, token = _free_port(), secrets.token_hex(16)
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--ServerApp.port={port}",
           "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp_path}",
           "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           "--LabApp.expose_app_in_browser=True"]  # window.jupyterapp: the test waits on the kernel itself
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


KERNEL_READY = """() => {
    const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
    const kernel = panel && panel.sessionContext && panel.sessionContext.session && panel.sessionContext.session.kernel;
    return !!kernel && kernel.connectionStatus === "connected" && kernel.status === "idle";
}"""


def _run_all_cells(page) -> None:
    """Run > Run All Cells, once the notebook's kernel is connected and idle.

    JupyterLab's execution indicator can read idle before the kernel's websocket is connected; a
    Run All sent then is lost (seen on CI: every prompt stayed ``[ ]:``). So wait for the kernel
    itself, through the app object, then use the same command as the menu item.
    """
    page.wait_for_function(KERNEL_READY, timeout=60_000)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")


def _run_until_the_widget_renders(page, attempts: int = 3) -> None:
    """Run every cell until the widget shows as a widget, not as its text ``ViewWidget(...)``.

    Right after the page loads, ipywidgets' front end may not yet be listening to the kernel: a
    widget displayed then falls back to its plain-text form. Running the cells again, once it is,
    renders it.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for _ in range(attempts):
        _run_all_cells(page)
        # Every cell has run when the last code cell shows the exercise verdict.
        page.wait_for_selector("text=not attempted yet", state="attached", timeout=120_000)
        try:
            page.locator(".widget-html pre").first.wait_for(state="attached", timeout=30_000)
            return
        except PlaywrightTimeout:
            continue
    raise AssertionError(f"the widget never rendered in {attempts} runs of every cell")


def test_chapter_zero_runs_and_its_widget_responds(lab: str, tmp_path: Path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(lab)
        page.wait_for_selector(".jp-Notebook", timeout=60_000)
        _run_until_the_widget_renders(page)
        caption = page.locator(".widget-html pre").first
        caption.scroll_into_view_if_needed()
        page.locator("img.widget-image").first.wait_for(timeout=30_000)
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
