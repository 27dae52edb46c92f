"""The classroom notebooks in a real browser: JupyterLab + headless Chromium, driven by Playwright.

Unit tests build the widgets in Python; only a browser sees whether JupyterLab can display them (when the
JupyterLab and ipywidgets versions drift, a class sees "Error displaying widget" instead of the page). Here a
private JupyterLab (127.0.0.1, a free port, a token, a temporary root holding copies of the notebooks) serves
notebooks 07 and 08 at the smoke profile; Chromium runs all their cells, clicks their widgets and checks that the
page answers. A screenshot of each goes to the test's tmp dir, and to $COLORLAB_BROWSER_SHOTS when it is set.

Needs Debian's `chromium` (/usr/bin/chromium; never `playwright install`) and the `playwright` package (pinned in
requirements.lock); without either the test is skipped, saying which and how .ci/run installs it.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from colorlab import notebooks, weights

CHROMIUM = Path(os.environ.get("COLORLAB_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
NB07, NB08 = "07_try_it_yourself.ipynb", "08_naturalness_study.ipynb"
# Appended to each copy's parameters cell: the smoke profile, few and small photos.
PARAMETERS = {
    NB07: {"PROFILE": "smoke", "PHOTOS": ["astronaut"], "STYLE_PHOTOS": ["china"], "MAX_SIDE": 128,
           "INTERACTIVE": True},
    NB08: {"PROFILE": "smoke", "N_IMAGES": 2, "MAX_SIDE": 128, "INTERACTIVE": True},
}
WIDGET_ERROR = "Error displaying widget"
TRACEBACK = "Traceback (most recent call last)"
RUN_ALL_TIMEOUT_S = 300  # notebook 07 trains a tiny demo network first (about a minute)
CLICK_TIMEOUT_S = 120

pytestmark = pytest.mark.slow


def _need_browser():
    if not CHROMIUM.exists():
        pytest.skip(f"Chromium is not installed ({CHROMIUM} is missing): .ci/run installs Debian's package with "
                    "`apt-get install -y --no-install-recommends chromium fonts-liberation` (or set COLORLAB_CHROMIUM to a "
                    "Chromium binary)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as err:
        pytest.skip(f"Playwright for Python is not installed ({err}): it is pinned in requirements.lock, so "
                    "`make venv` (run by .ci/run through `make test`) installs it; browsers come from apt, "
                    "never `playwright install`")
    for module in ("jupyterlab", "ipywidgets"):
        try:
            __import__(module)
        except ImportError as err:
            pytest.skip(f"{module} is not installed ({err}): `make venv` installs it from requirements.lock")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _copy_with_parameters(src: Path, dst: Path, params: dict) -> None:
    nb = nbformat.read(src, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    cell.source += "\n# browser test (tests/test_browser.py)\n" + "".join(f"{k} = {v!r}\n" for k, v in params.items())
    nbformat.write(nb, dst)


def _write_lab_settings(settings_dir: Path) -> None:
    """Every cell in the DOM (no windowing) and no news or update checks (no internet)."""
    files = {
        "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                           "checkForUpdates": False},
    }
    for name, value in files.items():
        path = settings_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))


class Lab:
    """A private JupyterLab server on 127.0.0.1 with a token; `url(notebook)` opens one in the browser."""

    def __init__(self, root: Path, state: Path):
        self.root, self.port, self.token = root, _free_port(), secrets.token_hex(16)
        self.results = Path(os.environ["COLORLAB_RESULTS"])
        env = {**os.environ, "JUPYTER_CONFIG_DIR": str(state / "config"), "JUPYTER_RUNTIME_DIR": str(state / "runtime"),
               "JUPYTERLAB_SETTINGS_DIR": str(state / "lab-settings"),
               "JUPYTERLAB_WORKSPACES_DIR": str(state / "lab-workspaces"),
               "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
        env.pop("JUPYTER_TOKEN", None)
        _write_lab_settings(state / "lab-settings")
        self.log_path = state / "jupyterlab.log"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={self.port}",
             "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={root}",
             "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None",
             "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
             "--LabApp.extension_manager=readonly", *(["--allow-root"] if os.geteuid() == 0 else [])],
            cwd=root, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_ready(90)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited ({self.proc.returncode}):\n{self.tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/status?token={self.token}", timeout=5):
                    return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"JupyterLab did not answer on port {self.port} in {timeout:.0f} s:\n{self.tail()}")

    def url(self, notebook: str) -> str:
        return f"http://127.0.0.1:{self.port}/lab/tree/{notebook}?token={self.token}&reset"

    def tail(self, n: int = 4000) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")[-n:]

    def _api(self, method: str, path: str):
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/api/{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
        return json.loads(body) if body else None

    def close(self) -> None:
        if self.proc.poll() is None:
            try:  # kernels run in sessions of their own: shut them down through the server
                for kernel in self._api("GET", "kernels"):
                    self._api("DELETE", f"kernels/{kernel['id']}")
            except OSError:
                pass
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    _need_browser()
    base = tmp_path_factory.mktemp("browser")
    root = base / "root"
    root.mkdir()
    shipped = weights.weights_dir()  # 07 demonstrates the shipped model when it is here, else trains a tiny one
    extra = {NB07: {"WEIGHTS_DIR": str(shipped) if shipped.is_dir() else ""}}
    for name, params in PARAMETERS.items():
        _copy_with_parameters(notebooks.notebooks_dir() / name, root / name, {**params, **extra.get(name, {})})
    # The kernels inherit these: runs trained by 07 are reused by 08, and nothing lands in the repository.
    env = {"COLORLAB_CACHE": base / "cache", "COLORLAB_RUNS": base / "cache" / "runs",
           "COLORLAB_RESULTS": base / "results"}
    before = {k: os.environ.get(k) for k in env}
    os.environ.update({k: str(v) for k, v in env.items()})
    server = Lab(root, base / "jupyter")
    try:
        yield server
    finally:
        server.close()
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def browser(lab, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=str(CHROMIUM), headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1400, "height": 1000}, chromium_sandbox=False)
        try:
            yield context
        finally:
            context.close()


def _shot(page, tmp_path: Path, name: str) -> list[Path]:
    paths = [tmp_path / f"{name}.png"]
    if os.environ.get("COLORLAB_BROWSER_SHOTS"):
        folder = Path(os.environ["COLORLAB_BROWSER_SHOTS"])
        folder.mkdir(parents=True, exist_ok=True)
        paths.append(folder / f"{name}.png")
    for path in paths:
        page.screenshot(path=str(path))
    print(f"screenshots: {', '.join(map(str, paths))}")
    return paths


def _open_and_run_all(page, lab: Lab, notebook: str):
    """Open `notebook`, wait for its kernel to be idle, then Run All (JupyterLab's own command)."""
    page.goto(lab.url(notebook))
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                           " && window.jupyterapp.shell.currentWidget.sessionContext"
                           " && window.jupyterapp.shell.currentWidget.sessionContext.session"
                           " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"
                           " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status === 'idle'",
                           timeout=90_000)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")


def _wait_for(page, lab: Lab, what: str, locator, timeout_s: float):
    """Wait for `locator`, or stop at the first traceback; on failure say what the notebook showed instead."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    traceback = page.locator(".jp-OutputArea-output", has_text=TRACEBACK)
    try:
        locator.first.or_(traceback.first).first.wait_for(state="visible", timeout=timeout_s * 1000)
    except PlaywrightTimeout:
        pass
    if locator.first.is_visible():
        return
    outputs = page.locator(".jp-OutputArea-output").all_inner_texts()
    errors = [t for t in outputs if TRACEBACK in t]
    shown = errors[:1] or outputs[-3:]
    hint = "a cell raised" if errors else f"nothing within {timeout_s:.0f} s"
    if any(t.lstrip().startswith(("VBox(", "HBox(")) for t in outputs):
        hint += "; the widget is shown as text: JupyterLab did not load the ipywidgets extension"
    text = "\n---\n".join(t[-3000:] for t in shown)
    raise AssertionError(f"{what} did not appear ({hint}); the notebook shows:\n{text}\n"
                         f"JupyterLab log:\n{lab.tail(1500)}")


def _check_clean(page, notebook: str) -> None:
    assert page.get_by_text(WIDGET_ERROR).count() == 0, f"{notebook}: {WIDGET_ERROR!r} on the page"
    tracebacks = [t for t in page.locator(".jp-OutputArea-output").all_inner_texts()
                  if TRACEBACK in t]
    assert not tracebacks, f"{notebook} raised:\n{tracebacks[0][-3000:]}"
    busy = page.locator(".jp-InputArea-prompt", has_text="[*]").count()
    assert busy == 0, f"{notebook}: {busy} cells still running"


def test_try_it_yourself_colorizes_in_the_browser(lab, browser, tmp_path):
    page = browser.new_page()
    _open_and_run_all(page, lab, NB07)
    button = page.get_by_role("button", name="Colorize", exact=True)
    _wait_for(page, lab, "notebook 07's Colorize button", button, RUN_ALL_TIMEOUT_S)
    page.wait_for_function("() => ![...document.querySelectorAll('.jp-InputArea-prompt')]"
                           ".some(p => p.textContent.includes('[*]'))", timeout=60_000)
    ui = page.locator(".jp-OutputArea-output").filter(has=button)
    images_before = ui.locator("img").count()
    button.first.scroll_into_view_if_needed()
    button.first.click()
    _wait_for(page, lab, "the comparison image under Colorize", ui.locator(f"img >> nth={images_before}"),
              CLICK_TIMEOUT_S)
    _wait_for(page, lab, "the status 'done'", ui.get_by_text("done", exact=True), 30)
    assert ui.locator("img").count() > images_before
    _check_clean(page, NB07)
    ui.locator("img").last.scroll_into_view_if_needed()
    shots = _shot(page, tmp_path, "07_try_it_yourself")
    assert all(p.stat().st_size > 10_000 for p in shots)
    page.close()


def test_naturalness_study_advances_in_the_browser(lab, browser, tmp_path):
    page = browser.new_page()
    _open_and_run_all(page, lab, NB08)
    viewer = page.get_by_placeholder("your name or number")
    _wait_for(page, lab, "notebook 08's viewer box", viewer, RUN_ALL_TIMEOUT_S)
    ui = page.locator(".jp-OutputArea-output").filter(has=viewer)
    viewer.first.scroll_into_view_if_needed()
    viewer.first.fill("browser-test")
    ui.get_by_role("button", name="Start", exact=True).click()
    _wait_for(page, lab, "the first image ('image 1 of')", ui.get_by_text("browser-test: image 1 of"), 60)
    first = ui.locator("img").first.get_attribute("src")
    ui.get_by_role("button", name="natural", exact=True).click()
    _wait_for(page, lab, "the next image ('image 2 of')", ui.get_by_text("browser-test: image 2 of"), 60)
    assert ui.locator("img").first.get_attribute("src") != first, "the image did not change after an answer"
    _check_clean(page, NB08)
    answers = lab.results / "naturalness" / "smoke" / "answers.csv"
    assert answers.exists() and "browser-test" in answers.read_text(), f"no answer by browser-test in {answers}"
    shots = _shot(page, tmp_path, "08_naturalness_study")
    assert all(p.stat().st_size > 10_000 for p in shots)
    page.close()
