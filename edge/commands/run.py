"""``face-edge run``: the live loop on a camera, the Pi camera, a video file, a folder or the demo clip."""
from __future__ import annotations

import argparse
import logging
import signal
import time
from typing import Any, Optional

from . import add_config_options, load_config, positive_float, positive_int

log = logging.getLogger("face-edge")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``run`` sub-command."""
    p = subparsers.add_parser("run", help="run the live loop: detect, track, analyse and show faces",
                              description="Run the live loop. q or Esc in the window, SIGINT or SIGTERM stop it "
                                          "cleanly (the camera is released).")
    add_config_options(p)
    p.add_argument("--source", metavar="URI",
                   help="demo | camera index (0) | /dev/videoN | picamera | video file | image folder "
                        "(default: source.uri from the config)")
    p.add_argument("--loop", action="store_true",
                   help="replay a video file or image folder when it ends (source.loop; the demo always loops)")
    p.add_argument("--speed", type=positive_float, metavar="X",
                   help="play a video file or image folder at X times its frame rate (source.speed; 1: as recorded)")
    p.add_argument("--no-display", action="store_true", help="run headless, without a window")
    p.add_argument("--record", metavar="OUT.mp4", help="write the annotated video to this file (.mp4 or .avi)")
    p.add_argument("--events", metavar="OUT.jsonl", help="append person appear/leave events, one JSON per line")
    p.add_argument("--max-frames", type=positive_int, metavar="N", help="stop after N frames")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the loop until the source ends, q/Esc, a signal or --max-frames; return 0."""
    settings = load_config(args)
    if args.record:
        settings.output.record = args.record
    if args.events:
        settings.output.events = args.events
    if args.no_display:
        settings.display.window = False
    if args.source is not None:
        settings.source.uri = args.source
    if args.loop:
        settings.source.loop = True
    if args.speed is not None:
        settings.source.speed = args.speed
    return run_loop(settings, args.max_frames)


def run_loop(settings: Any, max_frames: Optional[int] = None) -> int:
    """Run the live loop of ``settings`` with its sinks, integrations (mqtt:, web:) and the systemd hooks; return 0."""
    from ..outputs import attach_outputs
    from ..pipeline import Pipeline, stop_on_signals
    from ..sinks import EventSink, VideoWriterSink, make_window
    from ..sources import make_source

    source = make_source(settings.source)
    source.open()                      # a missing camera or unreadable video: SourceError, exit 2
    sinks = []
    events = None
    try:
        pipeline = Pipeline(settings, source=source, source_is_open=True)
        if settings.display.window:
            window = make_window(settings.display.title, settings.display.fullscreen)
            if window is not None:
                sinks.append(window)
        else:
            log.info("headless: no window (display.window off or --no-display)")
        if settings.output.record:
            fps = getattr(source, "fps", 0.0) or float(settings.source.fps)
            sinks.append(VideoWriterSink(settings.output.record, fps))
        if settings.output.events:
            events = EventSink(settings.output.events)
    except BaseException:
        source.close()
        for sink in sinks:
            sink.close()
        raise
    pipeline.sinks = sinks
    pipeline.events = events
    previous = stop_on_signals(pipeline)
    service = None
    outputs = None
    started = time.monotonic()
    try:
        outputs = attach_outputs(pipeline, settings)
        service = _attach_service(pipeline, settings)
        if service is not None and outputs is not None:
            service.reporters.append(outputs)
        frames = pipeline.run(max_frames)
    finally:
        pipeline.close()             # already done by run(); here for a failed attach
        if outputs is not None:
            outputs.close()
        if service is not None:
            service.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    seconds = time.monotonic() - started
    log.info("stopped after %d frames in %.1f s (%.1f frames/s)", frames, seconds, frames / seconds if seconds else 0.0)
    return 0


def _attach_service(pipeline: Any, settings: Any) -> Optional[Any]:
    """Hook systemd notify/watchdog/reload onto the loop when edge.service is there; None otherwise."""
    try:
        from ..service import attach
    except ImportError:
        return None
    return attach(pipeline, settings)
