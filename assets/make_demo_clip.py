"""Build edge/assets/demo.mp4, the clip `face-edge run` plays by default.

Source picture: scikit-image's ``astronaut.png`` (Eileen Collins, NASA photo, public domain).
The clip is ~10 s of 640x480 at 15 frames/s: the astronaut's head and shoulders pan and zoom
across the frame, and from 3 s to 7.5 s a second, smaller mirrored copy slides in, stays and out,
so the demo shows two tracks, appear/leave events and boxes that follow moving faces.

    pip install scikit-image        # only this script needs it
    python assets/make_demo_clip.py [--out edge/assets/demo.mp4]

Prints the size of the file and in how many frames the Haar detector finds each face.
``--overlay assets/overlay.jpg`` instead saves the README's overlay picture: frame 70 of the clip
after the full loop with edge.yaml (the bundles in models/; detection only while there are none),
each frame's looks at faces applied before the next frame.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT, FPS, SECONDS = 640, 480, 15, 10


def astronaut_bgr() -> np.ndarray:
    """Return scikit-image's astronaut.png as a BGR uint8 array (512x512)."""
    try:
        from skimage import data
    except ImportError:
        sys.exit("make_demo_clip: needs scikit-image (pip install scikit-image)")
    return np.ascontiguousarray(data.astronaut()[:, :, ::-1])


def background() -> np.ndarray:
    """Return a dark blue-grey vertical gradient the size of the clip."""
    ramp = np.linspace(40, 90, HEIGHT, dtype=np.float32)[:, None, None]
    tint = np.array([1.0, 0.8, 0.65], np.float32)[None, None, :]
    return np.broadcast_to(ramp * tint, (HEIGHT, WIDTH, 3)).astype(np.uint8).copy()


def paste(canvas: np.ndarray, patch: np.ndarray, cx: float, cy: float) -> None:
    """Paste ``patch`` centred on (cx, cy), clipped to the canvas."""
    ph, pw = patch.shape[:2]
    x0, y0 = int(round(cx - pw / 2)), int(round(cy - ph / 2))
    xa, ya = max(0, x0), max(0, y0)
    xb, yb = min(canvas.shape[1], x0 + pw), min(canvas.shape[0], y0 + ph)
    if xb > xa and yb > ya:
        canvas[ya:yb, xa:xb] = patch[ya - y0:yb - y0, xa - x0:xb - x0]


def render(portrait: np.ndarray, t: float) -> np.ndarray:
    """Return the frame at time ``t`` seconds."""
    frame = background()
    zoom = 1.15 + 0.15 * math.sin(2 * math.pi * t / SECONDS)          # 1.0x .. 1.3x
    main = cv2.resize(portrait, None, fx=0.9 * zoom, fy=0.9 * zoom, interpolation=cv2.INTER_AREA)
    cx = WIDTH * (0.36 + 0.12 * math.sin(2 * math.pi * t / 5.0))
    cy = HEIGHT * 0.5 + 20 * math.sin(2 * math.pi * t / 3.3)
    paste(frame, main, cx, cy)
    if 3.0 <= t <= 7.5:                                                  # a second, smaller face
        guest = cv2.resize(portrait[:, ::-1], None, fx=0.6, fy=0.6, interpolation=cv2.INTER_AREA)
        gw = guest.shape[1]
        rest = WIDTH - gw / 2 - 10                                       # slides in, stays, slides out
        u = min(1.0, (t - 3.0) / 1.0, (7.5 - t) / 1.0)
        paste(frame, guest, rest + (1.0 - u) * gw, HEIGHT * 0.3 + 10 * math.sin(2 * math.pi * t / 2.0))
    return frame


def write_clip(out: Path) -> Path:
    """Write the clip to ``out`` (mp4v); fall back to MJPG .avi if mp4 cannot be written. Returns the path."""
    src = astronaut_bgr()
    portrait = src[10:400, 60:390]                                       # head and shoulders
    for path, fourcc in ((out, "mp4v"), (out.with_suffix(".avi"), "MJPG")):
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), FPS, (WIDTH, HEIGHT))
        if not writer.isOpened():
            continue
        for i in range(FPS * SECONDS):
            writer.write(render(portrait, i / FPS))
        writer.release()
        cap = cv2.VideoCapture(str(path))
        ok, _ = cap.read()
        cap.release()
        if ok:
            return path
    sys.exit("make_demo_clip: OpenCV could write neither mp4v nor MJPG")


def detection_report(path: Path) -> str:
    """Return how many frames have 0, 1, 2 Haar faces with the default detector settings."""
    sys.path.insert(0, str(REPO))
    from edge.detect import HaarDetector

    detector = HaarDetector()
    cap = cv2.VideoCapture(str(path))
    counts: dict[int, int] = {}
    total = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        n = len(detector.detect(frame))
        counts[n] = counts.get(n, 0) + 1
        total += 1
    cap.release()
    return f"{total} frames; frames by number of faces found: {dict(sorted(counts.items()))}"


def overlay_picture(out: Path, frame_index: int = 70) -> None:
    """Save frame ``frame_index`` of the demo as drawn by the full loop with edge.yaml."""
    sys.path.insert(0, str(REPO))
    from edge.config import load_settings
    from edge.pipeline import Pipeline

    class Keep:
        name = "picture"
        frame = None

        def write(self, frame: np.ndarray) -> bool:
            self.frame = frame.copy()
            return True

        def close(self) -> None:
            pass

    settings = load_settings(REPO / "edge.yaml")
    settings.source.realtime = False
    # Whole-frame search on every frame: which faces the picture shows must not depend on how far the
    # background search got on this machine (live, a face the search has not reached yet is unlabelled).
    settings.detector.full_frame_every = 1
    keep = Keep()
    pipeline = Pipeline(settings, sinks=[keep])
    # Each frame waits for the looks it handed to the model worker, so the picture does not depend on
    # how fast this machine runs the models (live, labels appear a few frames after a face).
    pipeline.on_frame.append(lambda p, i: p.drain())
    pipeline.run(max_frames=frame_index + 1)
    cv2.imwrite(str(out), keep.frame)
    print(f"{out}: frame {frame_index}, models: {', '.join(pipeline.models) or 'none (detection only)'}")


def main() -> None:
    """Build the clip and print its size and detection figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "edge" / "assets" / "demo.mp4")
    parser.add_argument("--overlay", type=Path, help="instead of building the clip, save the overlay picture here (e.g. assets/overlay.jpg)")
    args = parser.parse_args()
    if args.overlay:
        overlay_picture(args.overlay)
        return
    args.out.parent.mkdir(parents=True, exist_ok=True)
    path = write_clip(args.out)
    print(f"{path}: {path.stat().st_size / 1e6:.2f} MB")
    print(detection_report(path))


if __name__ == "__main__":
    main()
