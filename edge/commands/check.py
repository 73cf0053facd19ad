"""``face-edge check``: a one-screen health report (source, detector, runtime, each bundle, gallery, display)."""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Optional

import numpy as np

from . import add_config_options, config_path, installed_runtimes, load_config

OK, FAIL, INFO = "ok", "FAIL", "--"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``check`` sub-command."""
    p = subparsers.add_parser("check", help="check camera/source, runtime, model bundles and display; "
                                            "exit 1 when something needed fails")
    add_config_options(p)
    p.add_argument("--source", metavar="URI", help="check this source instead of source.uri")
    p.set_defaults(func=run)


def _first(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def run(args: argparse.Namespace) -> int:
    """Print one line per check; return 0 when all needed checks pass, else 1."""
    from .. import __version__
    from ..detect import HaarDetector, cascade_path
    from ..errors import FaceEdgeError
    from ..pipeline import load_models
    from ..runtime import get_runtime
    from ..display import probe_display
    from ..sources import make_source

    settings = load_config(args)
    rows: list[tuple[str, str, str]] = []
    where = config_path(args.config) or "built-in defaults"
    print(f"face-edge {__version__} check (config: {where})")

    uri = args.source if args.source is not None else settings.source.uri
    frame: Optional[np.ndarray] = None
    try:
        source = make_source(settings.source, uri)
        source.open()
        try:
            deadline = time.monotonic() + 5.0
            while frame is None and time.monotonic() < deadline:
                frame = source.read(1.0)
        finally:
            source.close()
        if frame is None or frame.size == 0:
            rows.append((FAIL, "source", f"{uri}: opened but gave no frame"))
        else:
            rows.append((OK, "source", f"{source.name}: {frame.shape[1]}x{frame.shape[0]} frame read"))
    except FaceEdgeError as exc:
        rows.append((FAIL, "source", _first(exc)))

    try:
        detector = HaarDetector(settings.detector.cascade, settings.detector.downscale, settings.detector.min_size,
                                settings.detector.scale_factor, settings.detector.min_neighbors)
        faces = f", {len(detector.detect(frame))} face(s) in that frame" if frame is not None and frame.size else ""
        rows.append((OK, "detector", f"{settings.detector.cascade} ({cascade_path(settings.detector.cascade).name})"
                                     f"{faces}"))
    except FaceEdgeError as exc:
        rows.append((FAIL, "detector", _first(exc)))

    bundles = list(settings.models.bundles)
    try:
        runtime = get_runtime(settings.models.runtime)
        rows.append((OK, "runtime", f"{runtime.name} {runtime.version()}, {settings.models.num_threads} thread(s) "
                                    f"(installed: {', '.join(installed_runtimes())})"))
    except FaceEdgeError as exc:
        rows.append((FAIL if bundles else INFO, "runtime", _first(exc)))

    models, errors = load_models(settings, bundles)
    for err in errors:
        rows.append((FAIL, "model", err))
    probe = np.full((96, 96, 3), 128, np.uint8)
    for name, model in models.items():
        try:
            model.predict(probe)
            t = time.perf_counter()
            model.predict(probe)
            ms = 1000 * (time.perf_counter() - t)
            signed = ", signed" if model.bundle.signed else ""
            rows.append((OK, "model", f"{name}: {model.task} v{model.manifest.version}{signed}, "
                                      f"{len(model.manifest.outputs)} output(s), runs ({ms:.1f} ms/face)"))
        except Exception as exc:
            rows.append((FAIL, "model", f"{name}: loads but fails to run ({_first(exc)})"))
    if not bundles:
        rows.append((INFO, "model", "no bundles configured: detection only"))
    aligned = [n for n, m in models.items() if m.manifest.crop.aligned]
    landmarks = [n for n, m in models.items() if m.task == "landmarks"]
    if aligned and not landmarks:
        rows.append((FAIL, "model", f"{', '.join(aligned)}: aligns faces by their landmarks, but no landmarks "
                                    "bundle is loaded: add 'landmarks' to models.bundles"))
    elif aligned:
        rows.append((OK, "model", f"{', '.join(aligned)}: faces aligned by {landmarks[0]}'s five points"))

    embedder = next((m for m in models.values() if m.task == "embedding"), None)
    gallery_path = Path(settings.recognition.gallery)
    if embedder is None:
        rows.append((INFO, "gallery", "no embedding model: recognition off"))
    elif not gallery_path.is_file():
        rows.append((INFO, "gallery", f"{gallery_path} does not exist yet: everyone is unknown until enrolled"))
    else:
        try:
            from ..gallery import open_gallery
            gallery = open_gallery(settings.recognition, embedder.manifest)
            rows.append((OK, "gallery", f"{gallery_path}: {len(gallery.names())} people, "
                                        f"threshold {gallery.threshold:.3f}"))
        except FaceEdgeError as exc:
            rows.append((FAIL, "gallery", _first(exc)))

    if not settings.display.window:
        rows.append((INFO, "display", "display.window is off: headless"))
    else:
        probe = probe_display()        # the same probe `face-edge run` makes before its first frame
        rows.append((OK, "display", f"{probe.detail}: the window opens") if probe.ok
                    else (INFO, "display", f"{probe.detail}: runs headless"))

    rows += integration_rows(settings)

    for status, what, detail in rows:
        print(f"  {status:<5} {what:<9} {detail}")
    failed = sum(1 for status, _, _ in rows if status == FAIL)
    print("all needed checks passed" if not failed else f"{failed} check(s) failed")
    return 1 if failed else 0


def integration_rows(settings) -> list[tuple[str, str, str]]:
    """Return the check lines of mqtt: and web:: broker login, token file, and the running service's counters
    (queued and dropped messages) when its control socket answers."""
    from ..errors import FaceEdgeError

    rows: list[tuple[str, str, str]] = []
    running = _service_integrations(settings)
    if not settings.mqtt.enabled:
        rows.append((INFO, "mqtt", "mqtt.enabled is off"))
    else:
        try:
            from ..mqtt import check_broker

            ok, line = check_broker(settings.mqtt)
            rows.append((OK if ok else FAIL, "mqtt", line))
        except FaceEdgeError as exc:
            rows.append((FAIL, "mqtt", _first(exc)))
        mq = (running or {}).get("mqtt")
        if mq:
            rows.append((OK if mq.get("connected") else FAIL, "mqtt",
                         f"running service: {'connected' if mq.get('connected') else 'not connected'}, "
                         f"{mq.get('queued', 0)} queued, {mq.get('dropped', 0)} dropped, {mq.get('sent', 0)} sent"
                         + (f" ({mq['last_error']})" if mq.get("last_error") else "")))
    if not settings.web.enabled:
        rows.append((INFO, "web", "web.enabled is off (face-edge serve runs the page)"))
    else:
        from ..web.auth import needs_token, token_path

        where = f"{settings.web.host}:{settings.web.port}"
        if not needs_token(settings.web.host):
            rows.append((OK, "web", f"{where}: this machine only, no token needed"))
        else:
            path = token_path(settings)
            if not path.exists():
                rows.append((INFO, "web", f"{where}: token file {path} is made on first start (mode 0600)"))
            elif path.stat().st_mode & 0o077:
                rows.append((FAIL, "web", f"{where}: token file {path} is readable by others: chmod 600 {path}"))
            else:
                rows.append((OK, "web", f"{where}: every request needs the token in {path}"))
        if running and running.get("web_url"):
            rows.append((OK, "web", f"running service serves {running['web_url']}"))
    return rows


def _service_integrations(settings) -> Optional[dict]:
    """Return the running service's integration counters over its control socket (None when it does not answer)."""
    path = settings.service.control_socket
    if not path or not Path(path).exists():
        return None
    from ..service import ControlClient

    try:
        return ControlClient(path).status(timeout=2.0).get("integrations")
    except (OSError, ValueError):
        return None
