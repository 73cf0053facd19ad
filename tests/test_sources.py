"""Sources: registry, demo clip, video files, image folders, USB camera errors and reconnect, Pi camera."""
from __future__ import annotations

import logging
import sys
import time
import types

import cv2
import numpy as np
import pytest

from edge.config import SourceSettings
from edge.errors import SourceError
from edge.sources import (ImageFolder, PiCamera, Source, UsbCamera, VideoFile, make_source,
                          open_source, register_source, SOURCE_KINDS)


def _write_clip(path, frames: int = 6, size=(64, 48), fps: float = 15.0):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    for i in range(frames):
        writer.write(np.full((size[1], size[0], 3), (20 * i) % 256, np.uint8))
    writer.release()
    return path


def _settings(**kw) -> SourceSettings:
    return SourceSettings(**{"realtime": False, **kw})


@pytest.mark.parametrize("uri,kind", [("demo", VideoFile), ("0", UsbCamera), ("/dev/video3", UsbCamera),
                                      ("picamera", PiCamera), ("rtsp://cam.local/stream", UsbCamera),
                                      ("clip.mp4", VideoFile)])
def test_registry_picks_the_kind_from_the_uri(uri, kind):
    source = make_source(_settings(), uri)
    assert isinstance(source, kind)
    assert isinstance(source, Source)


def test_registry_folder_and_custom_kind(tmp_path):
    assert isinstance(make_source(_settings(), str(tmp_path)), ImageFolder)
    register_source("test-kind", lambda u: u == "test://x", lambda u, s: ImageFolder(tmp_path), "test", first=True)
    try:
        assert isinstance(make_source(_settings(), "test://x"), ImageFolder)
    finally:
        SOURCE_KINDS[:] = [k for k in SOURCE_KINDS if k.name != "test-kind"]


def test_demo_clip_is_640x480_and_loops():
    source = open_source(_settings(loop=False), "demo")      # the demo loops whatever source.loop says
    try:
        assert not source.is_live and source.name == "demo"
        first = source.read()
        assert first.shape == (480, 640, 3)
        n = 1
        while source.loops == 0 and n < 1000:
            assert source.read() is not None
            n += 1
        assert n - 1 == 150 and not source.ended      # 150 frames, then the first one again
    finally:
        source.close()


def test_a_video_plays_once_by_default_and_loops_on_request(tmp_path):
    clip = str(_write_clip(tmp_path / "c.avi", frames=5))
    looped = open_source(_settings(loop=True), clip)
    assert sum(looped.read() is not None for _ in range(12)) == 12 and looped.loops == 2
    looped.close()
    source = open_source(_settings(), clip)
    frames = []
    while (f := source.read()) is not None:
        frames.append(f)
    assert len(frames) == 5 and source.ended
    source.close()
    source.close()   # closing twice is fine


def test_realtime_pacing_is_not_faster_than_the_clip(tmp_path):
    clip = _write_clip(tmp_path / "c.avi", frames=8, fps=20.0)
    source = open_source(_settings(realtime=True, loop=False), str(clip))
    t = time.monotonic()
    while source.read() is not None:
        pass
    # 8 frames at 20 fps: the last one is due 7/20 s after the first (a lower bound only).
    assert time.monotonic() - t >= 0.3
    source.close()


def test_speed_paces_files_at_a_multiple_of_their_frame_rate(tmp_path):
    clip = _write_clip(tmp_path / "c.avi", frames=8, fps=20.0)
    settings = _settings(realtime=True, loop=False)
    settings.speed = 2.0
    source = open_source(settings, str(clip))
    assert source._pacer.period == pytest.approx(1 / 40)
    t = time.monotonic()
    while source.read() is not None:
        pass
    assert time.monotonic() - t >= 0.15            # 8 frames at 2 x 20 fps: 7/40 s (a lower bound only)
    source.close()
    folder = tmp_path / "stills"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), np.zeros((8, 8, 3), np.uint8))
    settings.fps = 10
    still = open_source(settings, str(folder))
    assert still._pacer.period == pytest.approx(1 / 20)
    still.close()


def test_missing_and_unreadable_videos(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        open_source(_settings(), str(tmp_path / "none.mp4"))
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 100)
    with pytest.raises(SourceError, match="cannot be read"):
        open_source(_settings(), str(junk))
    assert SourceError("x").exit_code == 2


def test_image_folder_plays_once_skips_unreadable_images_and_loops_on_request(tmp_path, caplog):
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((40, 50, 3), 60 * i, np.uint8))
    (tmp_path / "1_broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (tmp_path / "notes.txt").write_text("ignored")
    source = open_source(_settings(), str(tmp_path))
    assert source.is_still and not source.is_live
    with caplog.at_level(logging.WARNING, logger="face-edge.source"):
        frames = []
        while (frame := source.read()) is not None:
            frames.append((source.current.name, int(frame[0, 0, 0])))
    assert frames == [("0.png", 0), ("1.png", 60), ("2.png", 120)]   # the broken image is skipped
    assert source.ended
    assert sum("cannot be read" in r.message for r in caplog.records) == 1
    looped = open_source(_settings(loop=True), str(tmp_path))
    names = [looped.read() is not None and looped.current.name for _ in range(7)]
    assert names == ["0.png", "1.png", "2.png", "0.png", "1.png", "2.png", "0.png"]
    assert sum("cannot be read" in r.message for r in caplog.records) == 2   # once per source, not per pass


def test_image_folder_without_images(tmp_path):
    with pytest.raises(SourceError, match="has no images"):
        open_source(_settings(), str(tmp_path))


def test_image_folder_with_nothing_readable_is_an_error(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "b.png").write_bytes(b"")
    with pytest.raises(SourceError, match="none of its 2 image"):
        open_source(_settings(loop=True), str(tmp_path))


def test_missing_camera_device_and_index():
    with pytest.raises(SourceError, match="/dev/video9 does not exist"):
        open_source(_settings(), "/dev/video9")
    with pytest.raises(SourceError, match="cannot be opened"):
        open_source(_settings(), "9")


def test_lost_camera_is_reopened_with_back_off(tmp_path, caplog):
    # No real camera exists here, so the live reader runs on cv2.VideoCapture over a short file:
    # when the file ends the "camera" stops delivering exactly like an unplugged one.
    clip = _write_clip(tmp_path / "cam.avi", frames=4)
    camera = UsbCamera(str(clip), reconnect_max_s=0.5)
    with caplog.at_level(logging.WARNING, logger="face-edge.source"):
        camera.open()
        try:
            deadline = time.monotonic() + 10
            saw_lost = False
            while camera.reconnects < 2 and time.monotonic() < deadline:
                camera.read(0.05)
                saw_lost |= camera.lost
            assert camera.reconnects >= 2
            assert saw_lost
            assert camera.read(2.0) is not None or camera.lost
        finally:
            camera.close()
    messages = [r.message for r in caplog.records]
    assert any("lost, reconnecting" in m for m in messages)
    assert any("is back" in m for m in messages)


def test_live_reader_keeps_only_the_newest_frame(tmp_path):
    clip = _write_clip(tmp_path / "cam.avi", frames=40)
    camera = UsbCamera(str(clip), reconnect_max_s=0.5)
    camera.open()
    try:
        time.sleep(0.3)            # the reader runs ahead; older frames are dropped, not queued
        first = camera.read(1.0)
        assert first is not None
        second = camera.read(0.01)
        assert second is None or second is not first      # never the same frame twice
    finally:
        camera.close()


def test_picamera_off_a_pi_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)   # import picamera2 -> ImportError
    with pytest.raises(SourceError, match="picamera2 package is not installed"):
        open_source(_settings(), "picamera")


def test_picamera_with_a_fake_picamera2_module(monkeypatch):
    # This mocks the Raspberry Pi camera, which cannot exist on this machine: a fake picamera2
    # module with the calls PiCamera makes (configure, start, capture_array, stop, close).
    calls = []

    class FakePicamera2:
        def create_video_configuration(self, main, controls):
            calls.append(("config", main["size"], main["format"], controls["FrameRate"]))
            return {"main": main}

        def configure(self, config):
            calls.append(("configure",))

        def start(self):
            calls.append(("start",))

        def capture_array(self, stream="main"):
            return np.full((48, 64, 4), 7, np.uint8)   # XBGR8888-like, 4 channels

        def stop(self):
            calls.append(("stop",))

        def close(self):
            calls.append(("close",))

    monkeypatch.setitem(sys.modules, "picamera2", types.SimpleNamespace(Picamera2=FakePicamera2))
    source = open_source(_settings(width=64, height=48, fps=20), "picamera")
    try:
        frame = source.read(2.0)
        assert source.is_live and frame.shape == (48, 64, 3)
    finally:
        source.close()
    assert ("config", (64, 48), "RGB888", 20.0) in calls
    assert calls[-2:] == [("stop",), ("close",)]
