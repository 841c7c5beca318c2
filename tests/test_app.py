"""The web app in a real browser: Debian's headless Chromium, driven by Playwright, against `python -m reenact.app`
started on 127.0.0.1 by the test itself."""
from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest

from reenact.app import file_kind, video_args
from third_party_wrappers.video import open_video

pytest.importorskip("gradio", reason="the web app's extra: pip install .[app]")
sync_api = pytest.importorskip("playwright.sync_api", reason="the web app's extra: pip install .[app]")
CHROMIUM = shutil.which("chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def test_uploads_are_typed_by_their_bytes(media, talking_clip, tmp_path):
    assert file_kind(media / "s42.jpg") == "image" and file_kind(talking_clip) == "video"
    fake = tmp_path / "fake.jpg"
    fake.write_bytes(b"#!/bin/sh\necho not an image\n")
    assert file_kind(fake) is None


def test_page_options_are_the_command_lines():
    """Defaults add no flags (the page starts from RunConfig's values); each option maps to its CLI flag."""
    base = dict(mode="relative", ref_frame="auto", expression_scale=1.0, coefficient_scales="",
                follow="pose + expression", smooth="one_euro", crop_only=False, start=0, end=0)
    assert video_args(base) == []
    changed = dict(base, mode="absolute", ref_frame="3", expression_scale=1.5, follow="pose only", smooth="none",
                   crop_only=True, start=2, end=20)
    assert video_args(changed) == ["--mode", "absolute", "--ref-frame", "3", "--expression-scale", "1.5",
                                   "--pose-only", "--smooth", "none", "--crop-only", "--start", "2", "--end", "20"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    """The app running in a child process on 127.0.0.1 (stopped after the module)."""
    port = _free_port()
    cwd = tmp_path_factory.mktemp("app")
    proc = subprocess.Popen([sys.executable, "-m", "reenact.app", "--port", str(port)], cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(120):
        try:
            urllib.request.urlopen(url, timeout=1)
            break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("the app did not start")
    yield url
    proc.kill()
    proc.wait()


@pytest.fixture(scope="module")
def page(app_url):
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        tab = browser.new_page(viewport={"width": 1280, "height": 1400})
        tab.set_default_timeout(120_000)  # uploads on a loaded two-core machine
        yield tab
        browser.close()


def test_a_portrait_and_a_clip_give_a_playable_video(page, app_url, media, talking_clip, tmp_path):
    """Upload s42 and a 48-frame clip, run: the result plays in the page and downloads as 48 frames with sound,
    the comparison beside it is three panels wide, the log names the chosen reference frame; a screenshot of the
    page is kept."""
    page.goto(app_url)
    page.locator("#portrait input[type=file]").set_input_files(str(media / "s42.jpg"))
    page.locator("#driving input[type=file]").set_input_files(str(talking_clip))
    page.locator("#run").click()
    result = page.locator("#result video")
    result.wait_for(timeout=300_000)
    page.locator("#comparison video").wait_for(timeout=300_000)
    page.screenshot(path=str(tmp_path / "app.png"), full_page=True)
    assert "driving reference frame" in page.locator("#log textarea").input_value()  # the auto choice, shown
    src = result.get_attribute("src")
    assert src
    video = tmp_path / "result.mp4"
    video.write_bytes(urllib.request.urlopen(src if src.startswith("http") else app_url + src.lstrip("/")).read())
    with open_video(video) as got, open_video(talking_clip) as drv:
        assert got.info.n_frames == drv.info.n_frames and got.info.has_audio
        frame = got.read(np.array([24]))[0]
    assert frame.std() > 10  # a picture, not a blank
    compare = page.locator("#comparison video").get_attribute("src")
    with urllib.request.urlopen(compare if compare.startswith("http") else app_url + compare.lstrip("/")) as r:
        (tmp_path / "compare.mp4").write_bytes(r.read())
    with open_video(tmp_path / "compare.mp4") as got:
        assert got.info.width >= 2.5 * got.info.height * frame.shape[1] / frame.shape[0]


def _children() -> list[str]:
    """The app's running child command lines (their work folders are the sessions')."""
    found = subprocess.run(["pgrep", "-f", "reenact.run .*reenact-app-"], capture_output=True, text=True)
    return found.stdout.split()


def test_cancel_stops_the_run_at_once(page, app_url, media, talking_clip):
    """Cancel while the child runs: the child is gone within seconds and no result appears."""
    page.goto(app_url)
    page.locator("#portrait input[type=file]").set_input_files(str(media / "s42.jpg"))
    page.locator("#driving input[type=file]").set_input_files(str(talking_clip))
    page.locator("#run").click()
    for _ in range(100):
        if _children():
            break
        time.sleep(0.1)
    assert _children(), "the run did not start"
    page.locator("#cancel").click()
    for _ in range(100):
        if not _children():
            break
        time.sleep(0.1)
    assert not _children()
    assert page.locator("#result video").count() == 0


def test_a_dog_shows_the_one_line_error(page, app_url, media, talking_clip):
    page.goto(app_url)
    page.locator("#portrait input[type=file]").set_input_files(str(media / "s25.jpg"))
    page.locator("#driving input[type=file]").set_input_files(str(talking_clip))
    page.locator("#run").click()
    toast = page.get_by_text("s25.jpg", exact=False).first
    toast.wait_for(timeout=120_000)
    assert "Traceback" not in page.content()


def test_the_still_tab_runs_pipelines_still(media, tmp_path):
    """The Still tab's run: `pipelines/still.py` in a child process turns and smiles the portrait; a dog is refused
    with the command line's one-line message."""
    from reenact.app import render_still
    from reenact.errors import InputError
    from third_party_wrappers.image import read_image

    options = dict(yaw=15, pitch=0, roll=0, preset="smile", strength=1.0, gan=False)
    *_, image = render_still(tmp_path, media / "s42.jpg", None, options, None, [])
    out, source = read_image(image), read_image(media / "s42.jpg")
    assert out.shape == source.shape and np.abs(out.astype(float) - source).mean() > 2
    with pytest.raises(InputError, match="s25.jpg"):
        list(render_still(tmp_path, media / "s25.jpg", None, options, None, []))
