"""`avslkit demo` in a real headless browser (Debian chromium + chromedriver, W3C WebDriver over HTTP).

No selenium: the few WebDriver commands needed are plain JSON requests to chromedriver. Skips when
/usr/bin/chromium or /usr/bin/chromedriver is missing (`.ci/install-browser.sh` installs them).
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import PIL.Image
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_demo import make_tiny_run, synth_clip  # noqa: E402

from avslkit.demo import DemoLocalizer, DemoServer  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ELEMENT_KEY = "element-6066-11e4-a52e-4f735466cecf"  # W3C WebDriver element reference
HOME_KEY = "\ue011"  # WebDriver key code for Home: moves a range input to its minimum
TIMEOUT_S = 90

pytestmark = pytest.mark.skipif(not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
                                reason="needs Debian chromium + chromium-driver (.ci/install-browser.sh)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WebDriver:
    """The handful of W3C WebDriver commands the test needs, over urllib."""

    def __init__(self, base: str, user_data_dir: Path):
        self.base = base
        args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--user-data-dir={user_data_dir}", "--window-size=1280,1000"]
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {"binary": str(CHROMIUM), "args": args}}}}
        self.session = self._call("POST", "/session", caps)["sessionId"]

    def _call(self, method: str, path: str, payload: Any = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                return json.loads(response.read())["value"]
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"WebDriver {method} {path}: {exc.code} {exc.read()[:500]!r}") from None

    def cmd(self, method: str, path: str, payload: Any = None) -> Any:
        return self._call(method, f"/session/{self.session}{path}", payload)

    def get(self, url: str) -> None:
        self.cmd("POST", "/url", {"url": url})

    def find(self, css: str) -> str:
        found = self.cmd("POST", "/element", {"using": "css selector", "value": css})
        assert ELEMENT_KEY in found, found
        return found[ELEMENT_KEY]

    def script(self, source: str, *args: Any) -> Any:
        return self.cmd("POST", "/execute/sync", {"script": source, "args": list(args)})

    def send_keys(self, css: str, text: str) -> None:
        self.cmd("POST", f"/element/{self.find(css)}/value", {"text": text})

    def click(self, css: str) -> None:
        self.cmd("POST", f"/element/{self.find(css)}/click", {})

    def wait_for(self, source: str, what: str, timeout: float = TIMEOUT_S) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.script(source)
            if value:
                return value
            time.sleep(0.1)
        message = self.script("return document.getElementById('message').textContent")
        raise AssertionError(f"timed out waiting for {what}; page message: {message!r}")

    def screenshot(self, path: Path) -> Path:
        path.write_bytes(base64.b64decode(self.cmd("GET", "/screenshot")))
        return path

    def quit(self) -> None:
        try:
            self.cmd("DELETE", "")
        except (AssertionError, OSError):
            pass


@pytest.fixture
def browser(tmp_path):
    port = _free_port()
    log = open(tmp_path / "chromedriver.log", "wb")
    driver_proc = subprocess.Popen([str(CHROMEDRIVER), f"--port={port}"], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(base + "/status", timeout=5) as response:
                    if json.loads(response.read())["value"].get("ready"):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or driver_proc.poll() is not None:
                raise AssertionError(f"chromedriver did not start: {(tmp_path / 'chromedriver.log').read_text()[-2000:]}")
            time.sleep(0.2)
        profile = tmp_path / "chromium-profile"
        profile.mkdir()
        driver = WebDriver(base, profile)
        try:
            yield driver
        finally:
            driver.quit()
    finally:
        driver_proc.terminate()
        try:
            driver_proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            driver_proc.kill()
        log.close()


@pytest.fixture
def server(tmp_path):
    localizer = DemoLocalizer.from_checkpoint(make_tiny_run(tmp_path / "model"), device="cpu")
    with DemoServer(localizer, port=0, temp_root=tmp_path) as srv:
        srv.start()
        yield srv


PIXELS_JS = """
const img = document.getElementById('fused');
const canvas = document.createElement('canvas');
canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
const ctx = canvas.getContext('2d');
ctx.drawImage(img, 0, 0);
return Array.from(ctx.getImageData(0, 0, canvas.width, canvas.height).data);
"""


def test_upload_clip_move_slider_fused_heatmap_changes(browser, server, tmp_path):
    clip = synth_clip(tmp_path / "synth")
    browser.get(server.url)
    browser.wait_for("return document.body.dataset.state === 'idle'", "the page to load /api/info")
    assert "random" in browser.script("return document.getElementById('notices').textContent")

    browser.send_keys("#video", str(clip))
    browser.click("#analyze")
    browser.wait_for("return document.body.dataset.state === 'ready' && document.getElementById('fused').complete", "the analysis")
    assert browser.script("return document.getElementById('results').hidden") is False
    first_src = browser.script("return document.getElementById('fused').src")
    first_pixels = browser.script(PIXELS_JS)
    first_conf = browser.script("return document.getElementById('confidence').textContent")
    assert first_src.startswith("data:image/png;base64,") and len(first_pixels) > 0
    assert browser.script("return document.getElementById('fused').dataset.alpha") == "0.9"
    for img in ("av", "ogl"):
        assert browser.script(f"return document.getElementById('{img}').naturalWidth") > 0
    browser.screenshot(tmp_path / "demo-before.png")

    # move the slider as a user does (keyboard on the focused range input: Home → α = 0)
    browser.click("#alpha")
    browser.send_keys("#alpha", HOME_KEY)
    browser.wait_for("return document.getElementById('fused').dataset.alpha === '0' && document.body.dataset.state === 'ready'"
                     " && document.getElementById('fused').complete", "the re-fused heatmap")
    assert browser.script("return document.getElementById('alpha').value") == "0"
    assert browser.script("return document.getElementById('alpha-value').textContent") == "0.00"
    second_src = browser.script("return document.getElementById('fused').src")
    second_pixels = browser.script(PIXELS_JS)
    assert second_src != first_src
    assert len(second_pixels) == len(first_pixels) and second_pixels != first_pixels
    assert browser.script("return document.getElementById('confidence').textContent") != first_conf

    shot = browser.screenshot(tmp_path / "demo-after.png")
    with PIL.Image.open(shot) as im:
        assert im.format == "PNG" and im.width > 300 and im.height > 300
    # a bad file: a readable message in the page, no stack trace
    bad = tmp_path / "notes.mp4"
    bad.write_text("this is not a video\n" * 20)
    browser.script("document.getElementById('upload-form').reset()")
    browser.send_keys("#video", str(bad))
    browser.click("#analyze")
    message = browser.wait_for("return document.body.dataset.state === 'error' && document.getElementById('message').textContent",
                               "the error message")
    assert "not a readable video" in message and "Traceback" not in message
    assert browser.script("return document.getElementById('message').className") == "error"
    browser.screenshot(tmp_path / "demo-error.png")
