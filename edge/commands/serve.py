"""``face-edge serve``: the live loop with the local web page and JSON API (or the page alone, ``--no-camera``)."""
from __future__ import annotations

import argparse
import logging
import signal
import threading
from typing import Any

from . import add_config_options, load_config, positive_int

log = logging.getLogger("face-edge")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``serve`` sub-command."""
    p = subparsers.add_parser(
        "serve", help="run the loop with the web page: live view, people, events, status, POST /api/recognize",
        description="Run the live loop headless with the web page and JSON API on web.host:web.port "
                    "(default 127.0.0.1:8080). On any address but 127.0.0.1 / localhost every request needs the "
                    "token, made on first start in web.token_file (default web-token beside the gallery, mode "
                    "0600). mqtt: in the config is honoured too. SIGINT or SIGTERM stop it.")
    add_config_options(p)
    p.add_argument("--host", metavar="ADDR", help="address to listen on (default: web.host)")
    p.add_argument("--port", type=int, metavar="N", help="port (default: web.port; 0 = any free port)")
    p.add_argument("--source", metavar="URI", help="camera or file for the loop (default: source.uri)")
    p.add_argument("--display", action="store_true", help="also show the window (default: headless)")
    p.add_argument("--no-camera", action="store_true",
                   help="no live loop: only people, enrollment and POST /api/recognize")
    p.add_argument("--max-frames", type=positive_int, metavar="N", help="stop after N frames")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Serve until a signal (or the source ends, or --max-frames); return 0."""
    settings = load_config(args)
    settings.web.enabled = True
    if args.host is not None:
        settings.web.host = args.host
    if args.port is not None:
        if not 0 <= args.port < 65536:
            from ..errors import ConfigError
            raise ConfigError(f"--port {args.port}: must be a port number (0: any free port)")
        settings.web.port = args.port
    if args.source is not None:
        settings.source.uri = args.source
    settings.display.window = bool(args.display)
    if args.no_camera:
        return _serve_without_camera(settings)
    from .run import run_loop

    return run_loop(settings, args.max_frames)


def _serve_without_camera(settings: Any) -> int:
    from ..web.app import WebApp
    from ..web.auth import load_or_create_token, needs_token, token_path
    from ..web.server import WebServer

    token = load_or_create_token(token_path(settings)) if needs_token(settings.web.host) else None
    server = WebServer(WebApp(settings), token).start()
    stop = threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    try:
        stop.wait()
    finally:
        server.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("web: stopped")
    return 0
