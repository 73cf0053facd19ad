"""The web page's JSON API over real HTTP: a running loop (demo clip, tiny real TFLite bundles) with the web server
on 127.0.0.1, and one on 127.0.0.2 (another address: the token is needed)."""
from __future__ import annotations

import json
import os
import socket
import stat
import struct
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.api import Analyzer
from edge.cli import main
from edge.errors import WebError
from edge.pipeline import Pipeline
from edge.sources import ImageFolder
from edge.web.app import WebApp
from edge.web.auth import load_or_create_token
from edge.web.server import ROUTES, WebServer

from .helpers.http import call, multipart
from .helpers.live_setup import build_models, demo_frames, jpeg, make_settings, served_loop

ONE_FACE = (0, 10, 20)     # demo frames with the astronaut alone
TWO_FACES = 60             # ... and with her mirrored copy


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    return build_models(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """A folder of JPEGs: three one-face frames, a two-face frame, a blurred one."""
    folder = tmp_path_factory.mktemp("photos")
    frames = demo_frames([*ONE_FACE, TWO_FACES])
    for i, frame in zip(ONE_FACE, frames):
        (folder / f"frame{i:03d}.jpg").write_bytes(jpeg(frame))
    (folder / "group.jpg").write_bytes(jpeg(frames[-1]))
    (folder / "blurred.jpg").write_bytes(jpeg(cv2.GaussianBlur(frames[0], (0, 0), 6)))
    return folder


@pytest.fixture(scope="module")
def served(models, tmp_path_factory):
    """The loop on the demo clip (paced at its 15 frames/s) with the web page on 127.0.0.1, any free port."""
    folder = tmp_path_factory.mktemp("served")
    settings = make_settings(models, folder, web={"enabled": True, "port": 0})
    settings.source.realtime = True
    with served_loop(settings) as (pipeline, outputs):
        yield {"url": outputs.web.url.rstrip("/"), "settings": settings, "pipeline": pipeline, "outputs": outputs,
               "folder": folder}


def get(served, path, **kw):
    return call("GET", served["url"] + path, **kw)


def wait_for(check, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def enroll(served, name, files, replace=False):
    body, ctype = multipart({"name": name, **({"replace": "1"} if replace else {})},
                            [("photos", fname, data) for fname, data in files])
    return call("POST", served["url"] + "/api/people", body, {"Content-Type": ctype})


def png_claiming(width: int, height: int) -> bytes:
    """Return a tiny PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb's header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


# ---- status and people ---------------------------------------------------------------------------

def test_status_says_fps_camera_models_and_memory(served):
    status = wait_for(lambda: (s := get(served, "/api/status").json())["loop"]["fps"] and s, what="a frame rate")
    loop = status["loop"]
    assert loop["camera"] == "ok" and loop["source"] == "demo" and loop["frames"] > 0
    assert {n: m["task"] for n, m in loop["models"].items()} == {
        "attributes": "attributes", "multitask": "multitask", "landmarks": "landmarks", "embedding": "embedding"}
    assert all(m["version"] == "1" for m in loop["models"].values())
    assert status["rss_mb"] > 20 and status["integrations"]["camera"] == "ok"


def test_enroll_by_upload_checks_and_says_what_face_edge_enroll_does(served, photos, capsys, tmp_path):
    files = [(p.name, p.read_bytes()) for p in sorted(photos.iterdir())]
    reply = enroll(served, "Eileen", files + [("../../etc/notes.txt", b"not an image"),
                                             ("big.png", png_claiming(8000, 4000))])
    assert reply.status == 200, reply.body
    result = reply.json()
    assert result["ok"] and result["samples"] == 3
    assert result["message"].startswith("enrolled Eileen: 3 new samples (3 in all, 4 skipped)")
    assert "skipped notes.txt: not an image (JPEG, PNG, WebP or BMP)" in result["lines"]
    assert "skipped big.png: 8000x4000 is 32.0 megapixels, more than web.max_image_megapixels (25)" in result["lines"]
    # The same photos through the command line: the same line for every image.
    config = tmp_path / "edge.yaml"
    settings = served["settings"]
    config.write_text(json.dumps({"models": {"dir": settings.models.dir, "bundles": settings.models.bundles},
                                  "recognition": {"gallery": str(tmp_path / "g.npz")}}))
    assert main(["enroll", "Eileen", "--from", str(photos), "--config", str(config)]) == 0
    cli = [line.strip().replace(str(photos) + "/", "") for line in capsys.readouterr().out.splitlines()]
    assert sorted(line for line in result["lines"] if "notes.txt" not in line and "big.png" not in line) == \
        sorted(line for line in cli if line.startswith(("ok ", "skipped ")))
    people = get(served, "/api/people").json()
    assert [(p["name"], p["samples"]) for p in people["people"]] == [("Eileen", 3)]
    gallery = Path(settings.recognition.gallery)
    assert stat.S_IMODE(gallery.stat().st_mode) == 0o600
    assert sorted(os.listdir(gallery.parent)) == ["gallery.npz", "gallery.npz.lock"]   # nothing else was written


def test_a_photo_set_with_no_usable_face_is_refused_with_the_cli_line(served, photos):
    before = Path(served["settings"].recognition.gallery).read_bytes()
    reply = enroll(served, "Bob", [("group.jpg", (photos / "group.jpg").read_bytes())])
    assert reply.status == 400
    assert reply.json()["error"].startswith("could not enroll Bob: no uploaded photo shows one sharp, frontal face "
                                            "(1x 2 faces found)")
    assert Path(served["settings"].recognition.gallery).read_bytes() == before
    assert enroll(served, "../x", [("a.jpg", b"x")]).json()["error"].startswith("name '../x': may not contain path")
    assert enroll(served, "Bob", []).status == 400


def test_the_running_loop_names_the_new_person_and_a_wrong_match_can_be_marked(served):
    def recognized():
        events = get(served, "/api/events").json()["events"]
        return [e for e in events if e["event"] == "recognized" and e["name"] == "Eileen" and e["can_mark_wrong"]]

    event = wait_for(recognized, what="the loop to recognise the enrolled person")[0]
    assert get(served, event["thumbnail"]).headers["content-type"] == "image/jpeg"
    samples = get(served, "/api/people").json()["people"][0]["samples"]
    reply = call("POST", f"{served['url']}/api/events/{event['id']}/wrong")
    assert reply.status == 200, reply.body
    message = reply.json()["message"]
    assert message.startswith("Eileen: ") and "stopped counting" in message
    left = get(served, "/api/people").json()["people"][0]["samples"]
    assert left < samples
    again = call("POST", f"{served['url']}/api/events/{event['id']}/wrong")
    assert again.status == 400 and "already marked wrong" in again.json()["error"]
    marked = [e for e in get(served, "/api/events").json()["events"] if e["id"] == event["id"]][0]
    assert marked["corrected"] == message and not marked["can_mark_wrong"]


def test_rename_and_remove_reach_the_running_loop(served, photos):
    if not get(served, "/api/people").json()["people"]:
        enroll(served, "Eileen", [(p.name, p.read_bytes()) for p in sorted(photos.glob("frame*.jpg"))])
    reply = call("POST", served["url"] + "/api/people/Eileen/rename", json.dumps({"name": "Eileen Collins"}).encode(),
                 {"Content-Type": "application/json"})
    assert reply.status == 200 and reply.json()["message"] == "renamed Eileen to Eileen Collins"
    wait_for(lambda: "Eileen Collins" in get(served, "/api/status").json()["integrations"]["people"],
             what="the loop to name her anew")
    reply = call("DELETE", served["url"] + "/api/people/Eileen%20Collins")
    assert reply.status == 200 and "removed Eileen Collins" in reply.json()["message"]
    assert get(served, "/api/people").json()["people"] == []
    wait_for(lambda: not get(served, "/api/status").json()["loop"]["recognition"], what="recognition to go off")
    assert call("DELETE", served["url"] + "/api/people/Nobody").json()["error"].startswith("'Nobody' is not enrolled")


# ---- recognition -----------------------------------------------------------------------------------

def test_recognize_answers_as_the_image_api_the_cli_and_the_live_loop(served, photos, tmp_path, capsys):
    enroll(served, "Eileen", [(p.name, p.read_bytes()) for p in sorted(photos.glob("frame*.jpg"))])
    data = (photos / "group.jpg").read_bytes()
    reply = call("POST", served["url"] + "/api/recognize", data, {"Content-Type": "image/jpeg"})
    assert reply.status == 200, reply.body
    web = reply.json()
    assert len(web["faces"]) == 2 and web["width"] == 640
    settings = served["settings"]
    analyzer = Analyzer.from_config(settings=settings)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert web["faces"] == [f.to_dict() for f in analyzer.analyze(image)]
    photo_models = get(served, "/api/status").json()["web"]        # answered on the loop's own models
    assert photo_models["photo_models"] == "the loop's" and not photo_models["photo_models_loaded"]
    config = tmp_path / "edge.yaml"
    config.write_text(json.dumps({"models": {"dir": settings.models.dir, "bundles": settings.models.bundles},
                                  "recognition": {"gallery": settings.recognition.gallery}}))
    assert main(["recognize", str(photos / "group.jpg"), "--json", "--config", str(config)]) == 0
    assert json.loads(capsys.readouterr().out)["faces"] == web["faces"]
    # The live loop's first look at each face of this image, and the API asked about the same boxes.
    folder = tmp_path / "stills"
    folder.mkdir()
    (folder / "group.jpg").write_bytes(data)
    settings_loop = make_settings(Path(settings.models.dir), tmp_path)
    settings_loop.recognition.gallery = settings.recognition.gallery
    settings_loop.tracker.vote_min = 1
    loop = Pipeline(settings_loop, source=ImageFolder(folder, fps=15, loop=False, realtime=False))
    loop.open()
    loop.step()
    tracks = loop.tracker.visible()
    assert tracks
    query = "&".join("box=" + ",".join(str(int(v)) for v in t.box) for t in tracks)
    asked = call("POST", f"{served['url']}/api/recognize?{query}", data, {"Content-Type": "image/jpeg"}).json()
    for track, face in zip(tracks, asked["faces"]):
        live = loop.summary(track).to_dict()
        assert face["name"] == live["name"] == "Eileen"
        assert face["distance"] == live["distance"]
        for key in ("attributes", "age", "gender", "emotion", "age_group"):
            assert face[key] == live[key], key
    loop.close()


def test_recognize_refuses_what_it_cannot_decode_safely(served):
    def post(body, ctype="application/octet-stream"):
        return call("POST", served["url"] + "/api/recognize", body, {"Content-Type": ctype})

    assert post(png_claiming(30000, 30000)).json()["error"] == "far more pixels than web.max_image_megapixels (25)"
    assert post(png_claiming(6000, 5000)).json()["error"].startswith("6000x5000 is 30.0 megapixels, more than")
    assert post(b"GIF89a" + b"\0" * 40).json()["error"] == "not an image (JPEG, PNG, WebP or BMP)"
    from PIL import Image
    import io
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "GIF")
    assert post(buf.getvalue()).json()["error"] == "a GIF image; send JPEG, PNG, WebP or BMP"
    assert post(b"\xff\xd8\xff\xe0" + b"\0" * 100).status == 400
    assert post(b"").json()["error"] == "empty file"
    reply = call("POST", served["url"] + "/api/recognize", None, {"Transfer-Encoding": "chunked"})
    assert reply.status == 411
    assert call("POST", served["url"] + "/api/recognize?box=1,2,3", b"x").json()["error"].startswith("box '1,2,3'")


def test_an_upload_over_the_limit_is_refused_before_it_is_read(models, tmp_path):
    settings = make_settings(models, tmp_path, web={"max_upload_mb": 1.0})
    server = WebServer(WebApp(settings), port=0).start()
    try:
        reply = call("POST", server.url + "api/recognize", b"\0" * 10, {"Content-Length": str(5 * 1024 * 1024)})
        assert reply.status == 413 and "larger than web.max_upload_mb (1)" in reply.json()["error"]
    finally:
        server.close()


# ---- what a request can reach ----------------------------------------------------------------------

def test_no_path_from_a_request_reaches_the_file_system(served):
    for path in ("/static/../../etc/passwd", "/static/%2e%2e/%2e%2e/etc/passwd", "/..%2f..%2fetc/passwd",
                 "/static/app.js/../../../etc/passwd", "/api/events/1/..%2f..%2fface.jpg", "/edge.yaml",
                 "/static/index.html", "/api/people/..%2F..%2Fetc"):
        reply = get(served, path)
        assert reply.status in (400, 404, 405), path
        assert b"root:" not in reply.body
    assert call("DELETE", served["url"] + "/api/people/%2E%2E").status == 400
    assert get(served, "/static/app.js").headers["content-type"].startswith("text/javascript")


def test_host_and_origin_are_checked_on_localhost(served):
    assert get(served, "/api/status", headers={"Host": "evil.example:80"}).status == 403   # DNS rebinding
    reply = call("POST", served["url"] + "/api/people/x/rename", b"{}",
                 {"Origin": "http://evil.example", "Content-Type": "application/json"})
    assert reply.status == 403 and reply.json()["error"] == "request from another site refused"
    same = served["url"].replace("http://", "")
    reply = call("POST", served["url"] + "/api/people/x/rename", b'{"name": "y"}', {"Origin": "http://" + same})
    assert reply.status == 400 and "not enrolled" in reply.json()["error"]   # passed the checks


@pytest.fixture
def remote(models, tmp_path):
    """The page on 127.0.0.2 (not 127.0.0.1: the token is needed) with a gallery of one person."""
    try:
        socket.create_server(("127.0.0.2", 0)).close()
    except OSError:
        pytest.skip("127.0.0.2 cannot be bound here")
    from .helpers.live_setup import enroll_astronaut
    settings = make_settings(models, tmp_path, web={"host": "127.0.0.2", "port": 0})
    enroll_astronaut(settings)
    token_file = Path(settings.recognition.gallery).parent / "web-token"
    token = load_or_create_token(token_file)
    server = WebServer(WebApp(settings), token).start()
    yield server, token, token_file, settings
    server.close()


def test_every_endpoint_needs_the_token_off_localhost(remote):
    server, token, token_file, settings = remote
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600 and len(token) >= 40
    samples = {"name": "Eileen", "id": "1"}
    for route in ROUTES:
        path = route.pattern.replace(r"(?P<name>[^/]+)", samples["name"]).replace(r"(?P<id>[0-9]{1,12})", "1")
        path = path.replace("\\", "").replace("(?:app.js|style.css)", "app.js")
        for headers in ({}, {"Authorization": "Bearer wrong-token-000000000000"},
                        {"Cookie": "face_edge_token=wrong-token-000000000000"}):
            reply = call(route.method, server.url.rstrip("/") + path, b"{}", headers)
            assert reply.status == 401, (route, headers, reply.status)
            assert b"Eileen" not in reply.body
        reply = call(route.method, server.url.rstrip("/") + path, b"{}", {"Authorization": f"Bearer {token}"})
        assert reply.status != 401, route
    assert [r.handler for r in ROUTES if r.changes] == ["api_enroll", "api_remove", "api_rename", "api_wrong"]


def test_without_the_token_nothing_changes_and_the_login_sets_a_cookie(remote):
    server, token, token_file, settings = remote
    gallery = Path(settings.recognition.gallery)
    before = gallery.read_bytes()
    base = server.url.rstrip("/")
    assert call("DELETE", base + "/api/people/Eileen").status == 401
    body, ctype = multipart({"name": "Mallory"}, [("photos", "a.jpg", b"x")])
    assert call("POST", base + "/api/people", body, {"Content-Type": ctype}).status == 401
    assert gallery.read_bytes() == before
    page = call("GET", base + "/")
    assert page.status == 401 and b"needs the access token" in page.body and b"Eileen" not in page.body
    wrong = call("POST", base + "/login", b"token=nope", {"Content-Type": "application/x-www-form-urlencoded"})
    assert wrong.status == 401 and b"That is not the token" in wrong.body
    login = call("POST", base + "/login", f"token={token}".encode(), {"Content-Type": "application/x-www-form-urlencoded"})
    assert login.status == 303 and "HttpOnly" in login.headers["set-cookie"] and "SameSite=Strict" in login.headers["set-cookie"]
    cookie = login.headers["set-cookie"].split(";")[0]
    people = call("GET", base + "/api/people", headers={"Cookie": cookie})
    assert people.status == 200 and people.json()["people"][0]["name"] == "Eileen"
    assert load_or_create_token(token_file) == token          # the same token on the next start
    token_file.chmod(0o644)
    with pytest.raises(WebError, match="readable by others"):
        load_or_create_token(token_file)


def test_live_view_is_capped_and_a_stalled_browser_never_holds_the_loop(served):
    url = served["url"]
    frame = get(served, "/api/live.jpg")
    assert frame.status == 200 and frame.body[:2] == b"\xff\xd8"
    sock = socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])))
    sock.sendall(b"GET /api/live.mjpg HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
    data = b""
    started = time.monotonic()
    while time.monotonic() - started < 3.0:
        data += sock.recv(65536)
    parts = data.count(b"Content-Type: image/jpeg")
    assert 2 <= parts <= 3 * served["settings"].web.live_fps + 2
    # Stop reading: the stream's socket fills up, the loop goes on.
    frames = get(served, "/api/status").json()["loop"]["frames"]
    time.sleep(3.0)
    assert get(served, "/api/status").json()["loop"]["frames"] > frames + 10
    sock.close()
    wait_for(lambda: get(served, "/api/status").json()["web"]["live_viewers"] == 0, timeout=20,
             what="the stalled stream to be dropped")
