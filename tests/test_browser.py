"""Every notebook in a real browser, as a learner on a laptop uses it (issue 14).

JupyterLab serves a scratch copy of ``notebooks/``, started with the flags ``course.py lab`` uses;
headless Chromium opens each notebook in a 1280 × 1100 window with the file browser open, runs
every cell, and checks:

- no cell leaves an error output, and the exercise feedback is rendered;
- every :class:`~course_lib.widgets.ViewWidget` is live (a widget, not its static picture);
- every control lies inside the output area, each slider keeps a track of at least
  :data:`MIN_TRACK` px and its readout, no description or button label is cut off, the picture is
  shown at its pixel size, and the widget fits the notebook's visible height;
- moving one control *with the mouse* changes the picture and the caption; the time from releasing
  the mouse to the last new picture is measured and reported (goal: :data:`GOAL_MS`).

Findings are collected per notebook and reported together (and written as JSON to
``$COURSE_BROWSER_REPORT`` when set), then asserted. Latency is reported, not asserted: it
depends on the machine.

Needs Debian's ``chromium`` (driven by Playwright through ``executable_path``; Playwright never
downloads a browser here). Without it the tests are skipped — unless ``COURSE_REQUIRE_BROWSER=1``
(set by ``.ci/run``), where a missing browser is a failure.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
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
VIEWPORT = {"width": 1280, "height": 1100}  # a laptop window; the file browser stays open
MIN_TRACK = 100  # px: the shortest slider track a mouse can set a value on
GOAL_MS = 300  # ms from releasing a control to its new picture (reported, not asserted)
NOTEBOOKS = sorted(p.stem for p in _notebooks.NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
REPORT: dict[str, dict] = {}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def course_lab_command(monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], dict[str, str]]:
    """The command ``python3 course.py lab`` runs and its environment, captured without running it."""
    spec = importlib.util.spec_from_file_location("course", _notebooks.ROOT / "course.py")
    course = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(course)
    ran: list[tuple[list[str], dict[str, str]]] = []
    monkeypatch.setattr(course, "setup", lambda: None)
    monkeypatch.setattr(course, "run", lambda *cmd, env, **kw: ran.append(([str(c) for c in cmd], env)))
    course.main(["lab"])
    (found,) = ran
    return found


def test_course_lab_hides_the_news_and_the_notebook_sources(monkeypatch):
    monkeypatch.delenv("JUPYTER_CONFIG_PATH", raising=False)
    cmd, env = course_lab_command(monkeypatch)
    config = Path(env["JUPYTER_CONFIG_PATH"]) / "labconfig" / "default_setting_overrides.json"
    notification = json.loads(config.read_text())["@jupyterlab/apputils-extension:notification"]
    assert notification == {"fetchNews": "false", "checkForUpdates": False}  # "none" asks on first launch
    assert "--LabApp.news_url=None" in cmd  # None (not ""): JupyterLab then never asks about news
    hidden = next(a for a in cmd if a.startswith("--ContentsManager.hide_globs="))
    globs = json.loads(hidden.partition("=")[2])
    assert "*.py" in globs and "__pycache__" in globs  # the stock globs are kept
    root = next(a for a in cmd if a.startswith("--ServerApp.root_dir="))
    assert Path(root.partition("=")[2]) == _notebooks.NOTEBOOKS  # *.py is hidden there only


def _write_widget_notebook(path: Path) -> None:
    """A notebook that shows every chapter's widget, built as the README's gallery builds it."""
    import nbformat

    from course_lib._gallery import BUILDERS

    cells = [nbformat.v4.new_code_cell("from course_lib._gallery import BUILDERS")]
    cells += [nbformat.v4.new_code_cell(f"BUILDERS[{n}]()  # chapter {n}") for n in BUILDERS]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):
    """JupyterLab, started as ``course.py lab`` starts it, on a scratch copy of the notebooks.

    Yields ``(base_url, token, root folder)``.
    """
    if CHROMIUM is None:
        if os.environ.get("COURSE_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium is not installed (apt-get install chromium), and COURSE_REQUIRE_BROWSER=1")
        pytest.skip("chromium is not installed; `apt-get install chromium` to run the browser test")
    tmp = tmp_path_factory.mktemp("lab")
    root = tmp / "notebooks"
    shutil.copytree(_notebooks.NOTEBOOKS, root, ignore=shutil.ignore_patterns(".*", "__pycache__"))
    _write_widget_notebook(root / "_widgets.ipynb")
    # JupyterLab 4 renders only the cells near the viewport ("windowing"); a widget scrolled out
    # of view is detached. Render every cell, as a reader scrolling would.
    settings = tmp / "cfg" / "lab" / "user-settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    (settings / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    with pytest.MonkeyPatch.context() as mp:
        course_cmd, course_env = course_lab_command(mp)
    course_flags = [a for a in course_cmd[2:] if a.startswith("--") and "root_dir" not in a]
    port, token = _free_port(), secrets.token_hex(16)
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--ServerApp.port={port}",
           "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
           *course_flags, "--LabApp.expose_app_in_browser=True"]  # window.jupyterapp: the test reads the app
    if hasattr(os, "geteuid") and os.geteuid() == 0 and "--allow-root" not in cmd:
        cmd.append("--allow-root")
    log = open(tmp / "lab.log", "w")
    server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                              env={**os.environ, "JUPYTER_CONFIG_DIR": str(tmp / "cfg"),
                                   "JUPYTER_CONFIG_PATH": course_env["JUPYTER_CONFIG_PATH"]})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("JupyterLab did not start:\n" + (tmp / "lab.log").read_text()) from None
                time.sleep(0.5)
        yield base, token, root
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def browser(lab):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()
    if REPORT:
        _write_report()


# --- what the page is asked (JavaScript run in the page) ---------------------------------------

# The notebook's kernel is connected, idle, and ipywidgets listens to it (its comm target is
# registered): a widget displayed before that falls back to its static picture.
KERNEL_READY = """() => {
    const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
    const kernel = panel && panel.sessionContext && panel.sessionContext.session && panel.sessionContext.session.kernel;
    if (!kernel || kernel.connectionStatus !== "connected" || kernel.status !== "idle") return false;
    const targets = kernel._targetRegistry;  // private; when absent, rely on the rerun below
    return !targets || "jupyter.widget" in targets;
}"""

# Every code cell ran (or one failed and Run All stopped), and the kernel is idle again.
RUN_STATE = """() => {
    const panel = window.jupyterapp.shell.currentWidget;
    const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
    const cells = panel.content.widgets.filter(c => c.model.type === "code");
    const errors = [], widgets = [];
    let pending = 0;
    cells.forEach((cell, i) => {
        if (cell.model.executionCount === null) pending += 1;
        const outputs = cell.model.outputs;
        for (let j = 0; j < outputs.length; j++) {
            const out = outputs.get(j).toJSON();
            if (out.output_type === "error") errors.push({cell: i, ename: out.ename, evalue: out.evalue});
            const data = out.data || {};
            if (data["application/vnd.jupyter.widget-view+json"] && /^\\w*Widget: /.test(data["text/plain"] || ""))
                widgets.push(i);
        }
    });
    const idle = !!kernel && kernel.status === "idle";
    return {done: idle && (pending === 0 || errors.length > 0), pending, errors, widgets,
            live: document.querySelectorAll(".course-view-widget").length};
}"""

# The geometry of one widget (the index-th ViewWidget) and everything in it.
GEOMETRY = """(index) => {
    const w = document.querySelectorAll(".course-view-widget")[index];
    const box = el => { const r = el.getBoundingClientRect(); return {left: r.left, right: r.right, top: r.top,
                                                                      bottom: r.bottom, width: r.width, height: r.height}; };
    const area = w.closest(".jp-OutputArea-output") || w.parentElement;
    const panel = window.jupyterapp.shell.currentWidget.content.node;  // the notebook's scrolling area
    const controls = [];
    w.querySelectorAll(".widget-slider, .widget-dropdown, .widget-text, .widget-checkbox, .widget-toggle-buttons, .widget-toggle-button")
      .forEach(el => {
        if (el.parentElement.closest(".widget-toggle-buttons")) return;  // a button of a row already listed
        const label = el.querySelector(".widget-label, .widget-label-basic");
        const track = el.querySelector(".slider-container, .noUi-target, .ui-slider");
        const readout = el.querySelector(".widget-readout");
        const cut = [];
        if (label && label.textContent && label.scrollWidth > label.clientWidth + 1 && !label.title) cut.push(label.textContent);
        el.querySelectorAll("button").forEach(b => { if (b.scrollWidth > b.clientWidth + 1) cut.push(b.textContent); });
        controls.push({kind: el.className.match(/widget-(slider|dropdown|text|checkbox|toggle-buttons|toggle-button)/)[1],
                       label: label ? label.textContent : "", box: box(el), track: track ? box(track).width : null,
                       readout: readout ? box(readout) : null, cut});
      });
    const img = w.querySelector("img.widget-image");
    const caption = w.querySelector(".widget-html-content, .widget-html");
    return {area: box(area), widget: box(w), panelHeight: panel.clientHeight, controls,
            image: img ? {box: box(img), natural: [img.naturalWidth, img.naturalHeight]} : null,
            caption: caption ? {box: box(caption), overflow: caption.scrollWidth - caption.clientWidth} : null};
}"""

# Record when the widget's picture and caption change, and when the mouse is released.
WATCH = """(index) => {
    const w = document.querySelectorAll(".course-view-widget")[index];
    const img = w.querySelector("img.widget-image"), caption = w.querySelector(".widget-html-content, .widget-html");
    window.__watch = {img: [], caption: [], up: null, src: img.src, text: caption.innerText};
    const seen = (key) => () => window.__watch[key].push(performance.now());
    if (window.__observers) window.__observers.forEach(o => o.disconnect());
    window.__observers = [new MutationObserver(seen("img")), new MutationObserver(seen("caption"))];
    window.__observers[0].observe(img, {attributes: true, attributeFilter: ["src"]});
    window.__observers[1].observe(caption, {childList: true, subtree: true, characterData: true});
    const up = () => { window.__watch.up = performance.now(); };
    document.addEventListener("mouseup", up, {capture: true, once: true});
    document.addEventListener("keyup", up, {capture: true, once: true});
}"""

WATCHED = """(index) => {
    const w = document.querySelectorAll(".course-view-widget")[index];
    const img = w.querySelector("img.widget-image"), caption = w.querySelector(".widget-html-content, .widget-html");
    const s = window.__watch;
    return {up: s.up, img: s.img, caption: s.caption, now: performance.now(),
            imgChanged: img.src !== s.src, captionChanged: caption.innerText !== s.text, text: caption.innerText};
}"""


# --- driving a notebook ----------------------------------------------------------------------

def _run_all(page, timeout_s: float) -> dict:
    """Run > Run All Cells once the kernel and ipywidgets are ready; wait until it is done."""
    page.wait_for_function(KERNEL_READY, timeout=90_000)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    deadline = time.monotonic() + timeout_s
    page.wait_for_timeout(1000)
    while True:
        state = page.evaluate(RUN_STATE)
        if state["done"]:
            return state
        if time.monotonic() > deadline:
            raise AssertionError(f"Run All did not finish in {timeout_s:.0f} s: {state}")
        page.wait_for_timeout(500)


def _check_geometry(geometry: dict) -> list[str]:
    """The layout problems of one widget, in words with numbers."""
    problems = []
    area = geometry["area"]
    for c in geometry["controls"]:
        name = f"{c['kind']} {c['label']!r}"
        b = c["box"]
        if b["right"] > area["right"] + 1 or b["left"] < area["left"] - 1:
            problems.append(f"{name} outside the output area: x {b['left']:.0f}–{b['right']:.0f}, "
                            f"area {area['left']:.0f}–{area['right']:.0f}")
        if c["kind"] == "slider" and (c["track"] or 0) < MIN_TRACK:
            problems.append(f"{name} track {c['track'] or 0:.0f} px < {MIN_TRACK} px")
        r = c["readout"]
        if r is not None and (r["right"] > area["right"] + 1 or r["width"] < 1):
            problems.append(f"{name} readout cut off (x {r['left']:.0f}–{r['right']:.0f}, width {r['width']:.0f})")
        for text in c["cut"]:
            problems.append(f"{name}: label {text!r} cut off without a tooltip")
    image = geometry["image"]
    if image is not None and image["natural"][0]:
        scale = image["box"]["width"] / image["natural"][0]
        if abs(scale - 1) > 0.02:
            problems.append(f"picture shown at {scale:.2f}× its pixel size "
                            f"({image['natural'][0]} px drawn, {image['box']['width']:.0f} px shown)")
        if image["box"]["right"] > area["right"] + 1:
            problems.append(f"picture past the output area's right edge by {image['box']['right'] - area['right']:.0f} px")
    if geometry["widget"]["height"] > geometry["panelHeight"]:
        problems.append(f"widget {geometry['widget']['height']:.0f} px tall; the notebook shows "
                        f"{geometry['panelHeight']} px")
    return problems


def _pick_control(widget):
    """One control to move with the mouse: a slider if there is one, else a button or box."""
    for selector in (".widget-slider .noUi-handle, .widget-slider .ui-slider-handle",
                     ".widget-toggle-buttons button:not(.mod-active)", ".widget-toggle-button",
                     ".widget-checkbox input", ".widget-text input"):
        found = widget.locator(selector)
        if found.count():
            return selector, found.first
    return None, None


def _move_with_the_mouse(page, widget) -> str:
    """Move one control with the mouse (a drag along a slider, or a click); return what was done."""
    selector, control = _pick_control(widget)
    if control is None:
        raise AssertionError("no control to move")
    control.scroll_into_view_if_needed()
    box = control.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    if "noUi-handle" in selector or "ui-slider-handle" in selector:
        track = widget.locator(".widget-slider .noUi-target, .widget-slider .ui-slider").first.bounding_box()
        # a third of the track, toward the far end: lands on a new value whatever the range
        to = x + track["width"] / 3 if x < track["x"] + track["width"] / 2 else x - track["width"] / 3
        page.mouse.move(x, y)
        page.mouse.down()
        page.mouse.move(to, y, steps=8)
        page.mouse.up()
        return f"dragged a slider {to - x:+.0f} px"
    if ".widget-text" in selector:
        page.mouse.click(x, y)
        control.press("End")
        control.type("1")
        control.press("Enter")
        return "typed into a text box"
    page.mouse.click(x, y)
    return f"clicked {selector}"


def _latency(page, index: int, settle_ms: int = 1500, timeout_s: float = 30) -> tuple[dict, float | None]:
    """Wait until the picture and caption changed and stopped changing; return the state and ms."""
    deadline = time.monotonic() + timeout_s
    while True:
        seen = page.evaluate(WATCHED, index)
        last = max(seen["img"] + seen["caption"], default=None)
        quiet = last is not None and seen["now"] - last > settle_ms
        if (seen["imgChanged"] and seen["captionChanged"] and quiet) or time.monotonic() > deadline:
            break
        page.wait_for_timeout(100)
    if seen["up"] is None or not seen["img"]:
        return seen, None
    return seen, max(0.0, max(seen["img"]) - seen["up"])


def _write_report() -> None:
    path = os.environ.get("COURSE_BROWSER_REPORT")
    if path:
        Path(path).write_text(json.dumps(REPORT, indent=1))


def _open_and_run(page, base: str, token: str, name: str, report: dict, problems: list[str]) -> dict:
    """Open ``name``.ipynb in a fresh workspace with the file browser open; Run All; note errors."""
    start = time.monotonic()
    # A workspace of its own, reset: otherwise JupyterLab reopens the notebooks of earlier tests
    page.goto(f"{base}/lab/workspaces/{name.strip('_')}/tree/{name}.ipynb?reset&token={token}")
    page.wait_for_selector(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook", timeout=90_000)
    if not page.locator("#filebrowser").is_visible():
        page.evaluate("() => window.jupyterapp.commands.execute('filebrowser:activate')")
    page.locator("#filebrowser").wait_for(state="visible", timeout=10_000)
    report["file_browser_lists"] = sorted(t.strip() for t in page.locator(
        "#filebrowser .jp-DirListing-itemText").all_inner_texts())
    state = _run_all(page, timeout_s=600)
    if len(state["widgets"]) > state["live"] and not state["errors"]:
        # a widget displayed before ipywidgets listened shows its picture: run once more
        state = _run_all(page, timeout_s=600)
    report["run_seconds"] = round(time.monotonic() - start, 1)
    for e in state["errors"]:
        problems.append(f"code cell {e['cell']} raised {e['ename']}: {e['evalue'][:200]}")
    if len(state["widgets"]) != state["live"]:
        problems.append(f"{len(state['widgets'])} ViewWidgets displayed, {state['live']} live on the page")
    toasts = page.locator(".Toastify__toast").all_inner_texts()
    if toasts:
        problems.append(f"notification(s) on screen: {toasts}")
    return state


def _try_every_widget(page, name: str, count: int, report: dict, problems: list[str]) -> None:
    """Check the layout of each live widget, move one of its controls with the mouse, time it."""
    for index in range(count):
        widget = page.locator(".course-view-widget").nth(index)
        widget.scroll_into_view_if_needed()
        geometry = page.evaluate(GEOMETRY, index)
        found = [f"widget {index}: {p}" for p in _check_geometry(geometry)]
        page.evaluate(WATCH, index)
        action = _move_with_the_mouse(page, widget)
        seen, ms = _latency(page, index)
        if not seen["imgChanged"]:
            found.append(f"widget {index}: picture unchanged after the mouse {action}")
        if not seen["captionChanged"]:
            found.append(f"widget {index}: caption unchanged after the mouse {action}")
        problems += found
        report["widgets"].append({
            "index": index, "action": action, "latency_ms": None if ms is None else round(ms),
            "renders": len(seen["img"]), "output_area_px": round(geometry["area"]["width"]),
            "widget_px": [round(geometry["widget"]["width"]), round(geometry["widget"]["height"])],
            "image_px": geometry["image"]["natural"] if geometry["image"] else None,
            "image_shown_px": round(geometry["image"]["box"]["width"]) if geometry["image"] else None,
            "caption_overflow_px": geometry["caption"]["overflow"] if geometry["caption"] else None,
            "controls": [(c["kind"], c["label"], round(c["box"]["width"]), c["track"] and round(c["track"]))
                         for c in geometry["controls"]],
            "problems": found})
        print(f"{name} widget {index}: {action}; new picture {ms if ms is None else round(ms)} ms after "
              f"release (goal {GOAL_MS} ms); {len(found)} layout/response problems")


def _close(page) -> None:
    try:  # free the kernel's memory before the next notebook
        page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.shutdown()")
    except Exception:  # the page may already be gone; the server's exit stops the kernel
        pass
    page.close()


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_and_its_widgets_fit_and_respond(lab, browser, name: str, tmp_path: Path):
    from course_lib._gallery import BUILDERS

    base, token, _ = lab
    page = browser.new_page(viewport=VIEWPORT)
    page.set_default_timeout(60_000)
    report: dict = {"widgets": []}
    REPORT[name] = report
    problems: list[str] = []
    start = time.monotonic()
    try:
        state = _open_and_run(page, base, token, name, report, problems)
        if page.locator(".jp-Notebook >> text=/not attempted yet|✓|✗/").count() == 0:
            problems.append("no exercise feedback rendered")
        if int(name[:2]) in BUILDERS and not state["live"]:
            problems.append("the chapter's widget is not on the page")
        _try_every_widget(page, name, state["live"], report, problems)
        page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=False)
    finally:
        report["seconds"] = round(time.monotonic() - start, 1)
        report["problems"] = problems
        _close(page)
        _write_report()
    assert not problems, f"{name} in a 1280 px window with the file browser open:\n  " + "\n  ".join(problems)
    hidden = [f for f in report["file_browser_lists"] if re.search(r"\.py$|\.cfg$", f)]
    assert not hidden, f"the file browser lists maintainer files: {hidden}"


def test_every_chapter_widget_on_one_page(lab, browser, tmp_path: Path):
    """Every chapter's widget built as the README gallery builds it, in one notebook: the layout
    and mouse checks above, for the library as it is now, whatever state the notebooks are in."""
    from course_lib._gallery import BUILDERS

    base, token, _ = lab
    page = browser.new_page(viewport=VIEWPORT)
    page.set_default_timeout(60_000)
    report: dict = {"widgets": []}
    REPORT["_widgets"] = report
    problems: list[str] = []
    try:
        state = _open_and_run(page, base, token, "_widgets", report, problems)
        if state["live"] != len(BUILDERS):
            problems.append(f"{len(BUILDERS)} chapter widgets built, {state['live']} live")
        _try_every_widget(page, "_widgets", state["live"], report, problems)
        for entry, number in zip(report["widgets"], BUILDERS):
            entry["chapter"] = number
        page.screenshot(path=str(tmp_path / "_widgets.png"), full_page=False)
    finally:
        report["problems"] = problems
        _close(page)
        _write_report()
    chapters = list(BUILDERS)
    named = [re.sub(r"^widget (\d+)", lambda m: f"chapter {chapters[int(m[1])]}", p) for p in problems]
    assert not problems, "chapter widgets in a 1280 px window with the file browser open:\n  " + "\n  ".join(named)


def test_a_stored_widget_shows_its_picture_before_the_kernel_runs(lab, browser, tmp_path: Path):
    """Static faces: what a reader sees of a built notebook before running it (as on GitHub),
    and that running it replaces the picture by the live widget instead of adding one."""
    import nbformat
    from nbclient import NotebookClient

    from course_lib.widgets import settle_progress_outputs

    base, token, root = lab
    code = ("from course_lib.temperature import temperature_widget\nfrom tqdm.auto import tqdm\n"
            "for _ in tqdm(range(3), desc='steps'): pass\ntemperature_widget()")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    NotebookClient(nb, kernel_name="python3").execute()
    assert settle_progress_outputs(nb) == 1
    stored = [o["data"] for o in nb.cells[0].outputs if "data" in o]
    assert stored[0]["text/plain"].startswith("steps: 100%|██████████| 3/3")
    assert "image/png" in stored[1] and stored[1]["text/plain"].startswith("ViewWidget: T = 1.00")
    nbformat.write(nb, root / "_stored.ipynb")

    page = browser.new_page(viewport=VIEWPORT)
    try:
        page.goto(f"{base}/lab/workspaces/stored/tree/_stored.ipynb?reset&token={token}")
        page.wait_for_selector(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook", timeout=90_000)
        page.locator(".jp-OutputArea-output img").first.wait_for(timeout=30_000)
        text = page.locator(".jp-OutputArea").first.inner_text()
        page.screenshot(path=str(tmp_path / "stored.png"))
        assert "ViewWidget(" not in text and not re.search(r"(?<!\d)0%", text), text
        assert page.locator(".course-view-widget").count() == 0  # no kernel yet: the picture
        state = _run_all(page, timeout_s=120)
        assert not state["errors"] and state["live"] == 1, state
        page.locator(".course-view-widget img.widget-image").first.wait_for(timeout=30_000)
        images = page.locator(".jp-OutputArea-output img").count()
        assert images == 1, f"{images} pictures after running: the live widget's only, not a static copy too"
    finally:
        _close(page)
