"""The web page in a real browser: Debian's headless Chromium driven by Playwright (its own browser download is
never used: executable_path=/usr/bin/chromium). A screenshot of every view goes to out/test-artifacts/web/."""
from __future__ import annotations

import os
import shutil
import socket
import time
from pathlib import Path

import pytest

from edge.web.app import WebApp
from edge.web.auth import load_or_create_token
from edge.web.server import WebServer

from .conftest import REPO
from .helpers.live_setup import build_models, demo_frames, enroll_astronaut, jpeg, make_settings, served_loop

pytestmark = pytest.mark.browser
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(os.environ.get("FACE_EDGE_TEST_ARTIFACTS", REPO / "out" / "test-artifacts")) / "web"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWS = ("live", "people", "events", "photo", "status")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """A fresh headless Chromium (new empty profile) through Playwright."""
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt install chromium; scripts/test.sh does)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM, headless=True, args=FLAGS,
            viewport={"width": 1100, "height": 760})
        context.set_default_timeout(30000)
        yield context
        context.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The loop on the demo clip (paced) with the page on 127.0.0.1, and photos to upload."""
    folder = tmp_path_factory.mktemp("site")
    models = build_models(folder / "models")
    settings = make_settings(models, folder, web={"enabled": True, "port": 0})
    settings.source.realtime = True
    photos = folder / "photos"
    photos.mkdir()
    frames = demo_frames([0, 10, 20, 60])
    for i, frame in zip((0, 10, 20), frames):
        (photos / f"ada-{i:03d}.jpg").write_bytes(jpeg(frame))
    (photos / "group.jpg").write_bytes(jpeg(frames[-1]))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with served_loop(settings) as (_, outputs):
        yield {"url": outputs.web.url, "photos": photos, "settings": settings, "models": models}


def wait_js(page, expression: str, timeout: float = 30.0) -> None:
    """Wait until ``expression`` is true in the page (polled from here: the page's CSP forbids eval in it)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        time.sleep(0.2)


def shot(page, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def test_enrollment_by_upload_end_to_end_and_every_view(browser, site):
    page = browser.new_page()
    dialogs: list[str] = []
    errors: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.accept()))
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(site["url"] + "#people", wait_until="domcontentloaded")
    page.wait_for_selector("#threshold:has-text('enrolled')")
    page.fill("#enroll-name", "Ada")
    page.set_input_files("#enroll-photos", sorted(str(p) for p in site["photos"].glob("ada-*.jpg")))
    page.click("#enroll-button")
    result = page.wait_for_selector("#enroll-result:has-text('enrolled Ada')")
    assert "enrolled Ada: 3 new samples (3 in all, 0 skipped)" in result.inner_text()
    assert "ok ada-000.jpg (sharpness" in result.inner_text()
    page.wait_for_selector("#people-table td.person-name:has-text('Ada')")
    assert page.inner_text("#people-table td.samples") == "3"
    shot(page, "people")

    page.goto(site["url"] + "#live", wait_until="domcontentloaded")
    wait_js(page, "document.querySelector('#live-img').naturalWidth === 640")
    page.wait_for_selector("#in-view dd:has-text('Ada')", timeout=30000)    # the running loop knows her now
    shot(page, "live")

    page.goto(site["url"] + "#events", wait_until="domcontentloaded")
    page.wait_for_selector("#events-list button.fix:has-text('Not Ada')", timeout=30000)
    wait_js(page, "[...document.querySelectorAll('#events-list img')].some(i => i.naturalWidth > 0)")
    shot(page, "events")
    page.click("#events-list button.fix:has-text('Not Ada') >> nth=0")
    message = page.wait_for_selector("#event-message:not([hidden])").inner_text()
    assert "stopped counting" in message, message
    assert dialogs and dialogs[-1].startswith("This was not Ada?")

    page.goto(site["url"] + "#photo", wait_until="domcontentloaded")
    page.set_input_files("#photo-file", str(site["photos"] / "group.jpg"))
    page.click("#photo-form button")
    page.wait_for_selector("#photo-table:not([hidden]) tbody tr >> nth=1")
    assert page.locator("#photo-table tbody tr").count() == 2
    assert not page.locator("#photo-canvas").is_hidden()
    shot(page, "photo")

    page.goto(site["url"] + "#status", wait_until="domcontentloaded")
    page.wait_for_selector("#status-table td:has-text('Frames per second')")
    text = page.inner_text("#status-table")
    assert "embedding v1" in text and "MB resident" in text
    shot(page, "status")
    assert sorted(p.stem for p in ARTIFACTS.glob("*.png") if p.stem in VIEWS) == sorted(VIEWS)
    assert errors == []
    page.close()


def test_a_request_without_the_token_is_refused_in_the_browser(browser, site, tmp_path):
    try:
        socket.create_server(("127.0.0.2", 0)).close()
    except OSError:
        pytest.skip("127.0.0.2 cannot be bound here")
    settings = make_settings(site["models"], tmp_path, web={"host": "127.0.0.2", "port": 0})
    enroll_astronaut(settings, "Grace")
    token = load_or_create_token(tmp_path / "web-token")
    server = WebServer(WebApp(settings), token).start()
    try:
        page = browser.new_page()
        response = page.goto(server.url, wait_until="domcontentloaded")
        assert response.status == 401 and "needs the access token" in page.inner_text("body")
        assert "Grace" not in page.content()
        # The browser's own requests (its cookie jar, no token yet): refused, and nothing changes.
        assert page.request.delete(server.url + "api/people/Grace").status == 401
        assert page.request.get(server.url + "api/people").status == 401
        assert page.request.get(server.url + "api/live.jpg").status == 401
        shot(page, "login")
        page.fill("input[name=token]", "not-the-token")
        page.click("button[type=submit]")
        page.wait_for_selector("text=That is not the token.")
        page.fill("input[name=token]", token)
        page.click("button[type=submit]")
        page.wait_for_url(server.url)
        page.goto(server.url + "#people", wait_until="domcontentloaded")
        page.wait_for_selector("#people-table td.person-name:has-text('Grace')")
        assert page.request.get(server.url + "api/people").status == 200     # the login cookie now goes along
        page.close()
    finally:
        server.close()
