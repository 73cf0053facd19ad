"""A network camera that stalls and dies: tracks end, events count only time with frames, the camera
is reopened and the loop goes on. The camera is a real MJPEG HTTP server on 127.0.0.1 (the kind of
stream many IP cameras serve), read by OpenCV's FFmpeg backend as a real one would be."""
from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import pytest

from edge.config import Settings
from edge.pipeline import Pipeline
from edge.sinks import EventSink
from edge.sources import DEMO_CLIP, UsbCamera


class MjpegCamera:
    """Serves the demo clip's first frame as multipart/x-mixed-replace JPEG at ~20 fps. ``state``:
    "stream" sends frames, "stall" keeps the connection open and sends nothing, "dead" closes every
    connection and answers new ones with 503."""

    def __init__(self):
        cap = cv2.VideoCapture(str(DEMO_CLIP))
        frame = cap.read()[1]
        cap.release()
        self.jpeg = cv2.imencode(".jpg", frame)[1].tobytes()
        self.state = "stream"
        camera = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                if camera.state == "dead":
                    self.send_error(503)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                try:
                    while camera.state != "dead":
                        if camera.state == "stream":
                            self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                                             % len(camera.jpeg) + camera.jpeg + b"\r\n")
                        time.sleep(0.05)
                except OSError:
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/video.mjpg"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.state = "dead"
        self.server.shutdown()
        self.server.server_close()


def _step_until(pipeline: Pipeline, predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pipeline.step()
        if predicate():
            return
    pytest.fail(f"timed out after {timeout:g} s waiting for {what}")


def test_a_camera_that_stalls_and_dies_ends_tracks_and_recovers(tmp_path, caplog):
    camera = MjpegCamera()
    events = tmp_path / "events.jsonl"
    s = Settings()
    s.models.bundles = []
    pipeline = Pipeline(s, source=UsbCamera(camera.url, reconnect_max_s=0.5, stall_s=1.0),
                        events=EventSink(events))
    read = lambda: [json.loads(line) for line in events.read_text().splitlines()]   # noqa: E731
    try:
        with caplog.at_level(logging.INFO):
            pipeline.open()
            _step_until(pipeline, lambda: any(e["event"] == "appear" for e in read()), 20, "the face to appear")
            first = next(e for e in read() if e["event"] == "appear")
            _step_until(pipeline, lambda: pipeline.frame_index >= 15, 20, "some frames")
            streamed_until = time.time()
            camera.state = "stall"                     # open, but no frame any more
            _step_until(pipeline, lambda: any(e["event"] == "leave" for e in read()), 20, "the track to end")
            leave = next(e for e in read() if e["event"] == "leave")
            assert leave["track"] == first["track"]
            assert leave["t"] <= streamed_until + 0.5           # it left when the frames stopped ...
            assert leave["seconds"] <= streamed_until - first["t"] + 1.0   # ... and no blind time is counted
            _step_until(pipeline, lambda: pipeline.source.lost, 20, "the stall to be noticed")
            assert "camera stalled: " in caplog.text and "sent no frame for" in caplog.text
            camera.state = "dead"                      # the camera goes away altogether for a while
            time.sleep(1.5)
            for _ in range(4):
                pipeline.step()                        # the loop (and the watchdog) go on meanwhile
            assert pipeline.source.lost and pipeline.tracker.tracks == []
            camera.state = "stream"
            _step_until(pipeline, lambda: sum(e["event"] == "appear" for e in read()) >= 2, 30,
                        "the camera to come back and the face to appear again")
            assert "is back" in caplog.text and not pipeline.source.lost
            again = [e for e in read() if e["event"] == "appear"][1]
            assert again["track"] != first["track"]
            assert pipeline.source.stalls >= 1 and pipeline.source.reconnects >= 1
    finally:
        pipeline.close()
        camera.close()
