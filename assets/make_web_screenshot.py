"""Make assets/web-page.jpg, the README's picture of the web page: the shipped bundles on the demo clip, the
astronaut enrolled from three of its frames through the page's own API, headless Chromium (Debian's) taking it.

    python assets/make_web_screenshot.py [--view live|people|events|photo|status] [--out assets/web-page.jpg]
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from edge.config import Settings  # noqa: E402
from edge.outputs import attach_outputs  # noqa: E402
from edge.pipeline import Pipeline  # noqa: E402
from tests.helpers.http import call, multipart  # noqa: E402
from tests.helpers.live_setup import demo_frames, jpeg  # noqa: E402

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--view", default="live", choices=("live", "people", "events", "photo", "status"))
    parser.add_argument("--out", default=str(REPO / "assets" / "web-page.jpg"))
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    folder = Path(tempfile.mkdtemp(prefix="web-shot-"))
    settings = Settings()
    settings.models.dir = str(REPO / "models")
    settings.recognition.gallery = str(folder / "gallery" / "gallery.npz")
    settings.display.window = False
    settings.web.enabled, settings.web.port = True, 0
    pipeline = Pipeline(settings)
    outputs = attach_outputs(pipeline, settings)
    thread = threading.Thread(target=pipeline.run, daemon=True)
    thread.start()
    url = outputs.web.url
    body, ctype = multipart({"name": "Eileen Collins"},
                            [("photos", f"collins-{i}.jpg", jpeg(f)) for i, f in zip((0, 10, 20), demo_frames((0, 10, 20)))])
    print(call("POST", url + "api/people", body, {"Content-Type": ctype}).json()["message"])
    time.sleep(12)      # a pass of the clip: the second face comes and goes, names are voted
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(str(folder / "profile"), executable_path=shutil.which("chromium"),
                                                        headless=True, args=FLAGS,
                                                        viewport={"width": 1000, "height": 700})
        page = context.new_page()
        page.goto(f"{url}#{args.view}", wait_until="domcontentloaded")
        time.sleep(4)
        png = page.screenshot()
        context.close()
    pipeline.stop()
    thread.join(10)
    outputs.close()
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    cv2.imwrite(args.out, image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    print(f"wrote {args.out} ({image.shape[1]}x{image.shape[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
