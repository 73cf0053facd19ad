"""The HTTP side of the web page: routes, the token, limits. Python's own threaded HTTP server, no framework.

Every request is checked in this order: a sane path (no ``..``, backslash or NUL; a path only ever
selects a route, never a file), the Host header (loopback servers only), the token (servers on any
other address), the Origin of requests that change something (the page itself, or no browser at
all), then the route. Bodies need a Content-Length of at most ``web.max_upload_mb``; larger ones are
refused before they are read. Errors answer ``{"error": "one line"}`` with a 4xx status.

=======  ==================================  =====================================================
method   path                                what
=======  ==================================  =====================================================
GET      ``/``                               the page (views: live, people, events, photo, status)
POST     ``/login``                          form field ``token``: sets the session cookie
GET      ``/api/status``                     fps, camera, models and versions, integrations, memory
GET      ``/api/people``                     enrolled people with sample counts, the threshold
POST     ``/api/people``                     multipart ``name``, ``photos`` (files), ``replace``: enroll
DELETE   ``/api/people/<name>``              remove a person
POST     ``/api/people/<name>/rename``       JSON ``{"name": new}``
GET      ``/api/events?after=ID``            recent events, newest first
GET      ``/api/events/<id>/face.jpg``       an event's face thumbnail
POST     ``/api/events/<id>/wrong``          the match was wrong: the samples that made it stop counting
POST     ``/api/recognize[?box=x,y,w,h]``    an image (raw body or multipart ``image``): faces as JSON
GET      ``/api/live.mjpg`` / ``live.jpg``   the annotated live view (MJPEG, capped) / one frame
=======  ==================================  =====================================================
"""
from __future__ import annotations

import html
import json
import logging
import re
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any, Optional
from urllib.parse import parse_qs, unquote, urlsplit

from ..errors import FaceEdgeError, WebError
from .app import WebApp
from .auth import host_allowed, needs_token, request_token, same_origin, session_cookie, token_matches
from .live import MAX_VIEWERS
from .uploads import UploadError, display_name, parse_multipart

log = logging.getLogger("face-edge.web")

STATIC = {"/": ("index.html", "text/html; charset=utf-8"),
          "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/static/style.css": ("style.css", "text/css; charset=utf-8")}
PAGE_CSP = ("default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
            "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
LOGIN_CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
MAX_JSON_BYTES = 64 * 1024
MAX_BOXES = 50


class HttpError(Exception):
    """Answer the request with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Route:
    """One endpoint: method, path pattern, handler method name, and whether it changes state."""

    method: str
    pattern: str
    handler: str
    changes: bool = False

    def match(self, method: str, path: str) -> Optional[dict[str, str]]:
        """Return the path's named groups when this route answers ``method path``."""
        if method != self.method:
            return None
        m = re.fullmatch(self.pattern, path)
        return m.groupdict() if m else None


ROUTES = (
    Route("GET", r"/", "page"),
    Route("GET", r"/static/(?:app\.js|style\.css)", "page"),
    Route("GET", r"/api/status", "api_status"),
    Route("GET", r"/api/people", "api_people"),
    Route("POST", r"/api/people", "api_enroll", changes=True),
    Route("DELETE", r"/api/people/(?P<name>[^/]+)", "api_remove", changes=True),
    Route("POST", r"/api/people/(?P<name>[^/]+)/rename", "api_rename", changes=True),
    Route("GET", r"/api/events", "api_events"),
    Route("GET", r"/api/events/(?P<id>[0-9]{1,12})/face\.jpg", "api_thumbnail"),
    Route("POST", r"/api/events/(?P<id>[0-9]{1,12})/wrong", "api_wrong", changes=True),
    Route("POST", r"/api/recognize", "api_recognize"),
    Route("GET", r"/api/live\.mjpg", "api_live_stream"),
    Route("GET", r"/api/live\.jpg", "api_live_frame"),
)


def login_page(message: str = "") -> bytes:
    """Return the small page that asks for the token (served with status 401)."""
    note = f"<p class=err>{html.escape(message)}</p>" if message else ""
    return f"""<!doctype html><html lang=en><head><meta charset=utf-8>
<meta name=viewport content="width=device-width, initial-scale=1"><title>face-edge: token needed</title>
<style>body{{font:16px system-ui,sans-serif;background:#111;color:#eee;display:grid;place-items:center;height:90vh}}
form{{background:#1d1d1d;padding:2em;border-radius:8px;max-width:26em}}input{{width:100%;padding:.5em;margin:.5em 0;
box-sizing:border-box}}button{{padding:.5em 1.5em}}.err{{color:#f77}}code{{color:#9cf}}</style></head>
<body><form method=post action=/login><h1>face-edge</h1><p>This page needs the access token. It is in the file
<code>web-token</code> beside the gallery on the device (<code>web.token_file</code>).</p>{note}
<label>Token <input name=token type=password autocomplete=current-password autofocus required></label>
<button type=submit>Open</button></form></body></html>""".encode("utf-8")


class WebServer:
    """Serves one WebApp on ``web.host:web.port`` from a thread (see the module docstring)."""

    def __init__(self, app: WebApp, token: Optional[str] = None, host: Optional[str] = None,
                 port: Optional[int] = None):
        self.app = app
        web = app.settings.web
        self.host = host if host is not None else web.host
        self.token = token
        if needs_token(self.host) and not token:
            raise WebError(f"web.host {self.host} is not 127.0.0.1: a token is needed")
        self.max_body = int(web.max_upload_mb * 1024 * 1024)
        self.static = {path: (resources.files(__package__).joinpath("static", name).read_bytes(), ctype)
                       for path, (name, ctype) in STATIC.items()}
        self.stopping = threading.Event()
        server_class = _IPv6Server if ":" in self.host else ThreadingHTTPServer
        try:
            self.httpd = server_class((self.host, web.port if port is None else port), _make_handler(self))
        except OSError as exc:
            raise WebError(f"web: cannot listen on {self.host}:{web.port if port is None else port} "
                           f"({exc.strerror or exc}): set web.port to a free port") from None
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self._thread: Optional[threading.Thread] = None

    @property
    def url(self) -> str:
        """Return the page's address."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def start(self) -> "WebServer":
        """Serve from a background thread; return self."""
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.25},
                                        name="face-edge-web", daemon=True)
        self._thread.start()
        log.info("web: page and API on %s (%s)", self.url,
                 "token needed: see the token file" if self.token else "this machine only")
        return self

    def close(self) -> None:
        """Stop serving and release the live-view streams."""
        self.stopping.set()
        if self.app.live is not None:
            self.app.live.close()
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(5)
        self.httpd.server_close()


class _IPv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def _make_handler(server: WebServer) -> type:
    class Handler(_Handler):
        web = server
    return Handler


class _Handler(BaseHTTPRequestHandler):
    """One request (a new thread each); ``web`` is the WebServer."""

    web: WebServer
    server_version = "face-edge"
    sys_version = ""
    protocol_version = "HTTP/1.0"
    timeout = 30          # a client that sends nothing (or too slowly) is dropped, not waited for forever

    # ---- plumbing ------------------------------------------------------------------------------
    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        """Log method, path (never the query: a login link carries the token) and status at debug level."""
        log.debug("web: %s %s %s -> %s", self.client_address[0], self.command, urlsplit(self.path).path, code)

    def log_error(self, format: str, *args: Any) -> None:
        """Log protocol errors at debug level (a port scan must not fill the journal)."""
        log.debug("web: %s: %s", self.client_address[0], format % args)

    def do_GET(self) -> None:
        """Answer a GET."""
        self._handle("GET")

    def do_POST(self) -> None:
        """Answer a POST."""
        self._handle("POST")

    def do_DELETE(self) -> None:
        """Answer a DELETE."""
        self._handle("DELETE")

    def _send(self, status: int, body: bytes, ctype: str, headers: Optional[dict[str, str]] = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Referrer-Policy", "same-origin")   # (no-referrer would make a form's Origin "null")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, data: Any) -> None:
        self._send(status, json.dumps(data, default=str).encode("utf-8"), "application/json")

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding"):
            raise HttpError(411, "send a Content-Length (chunked uploads are not accepted)")
        length = self.headers.get("Content-Length")
        if length is None:
            raise HttpError(411, "send a Content-Length")
        try:
            n = int(length)
        except ValueError:
            raise HttpError(400, "bad Content-Length") from None
        if n < 0:
            raise HttpError(400, "bad Content-Length")
        if n > self.web.max_body:
            self.close_connection = True
            raise HttpError(413, f"upload of {n / 1e6:.1f} MB is larger than web.max_upload_mb "
                                 f"({self.web.app.settings.web.max_upload_mb:g})")
        self.connection.settimeout(60)
        data = self.rfile.read(n)
        if len(data) < n:
            raise HttpError(400, "the upload was cut short")
        return data

    def _json_body(self) -> dict[str, Any]:
        if self.headers.get("Content-Length") and int(self.headers.get("Content-Length") or 0) > MAX_JSON_BYTES:
            raise HttpError(413, "JSON body too large")
        try:
            data = json.loads(self._body().decode("utf-8") or "{}")
        except (ValueError, UnicodeDecodeError):
            raise HttpError(400, "the body is not JSON") from None
        if not isinstance(data, dict):
            raise HttpError(400, "expected a JSON object")
        return data

    # ---- the checks every request goes through -----------------------------------------------
    def _handle(self, method: str) -> None:
        try:
            split = urlsplit(self.path)
            path = split.path
            if (len(self.path) > 4096 or not path.startswith("/") or "\\" in path or "\0" in unquote(path)
                    or ".." in unquote(path).split("/")):
                raise HttpError(400, "bad path")
            if not host_allowed(self.headers.get("Host"), self.web.host):
                raise HttpError(403, "this page answers only to localhost / 127.0.0.1 (Host header refused)")
            if method in ("POST", "DELETE") and not same_origin(self.headers.get("Origin"), self.headers.get("Host")):
                raise HttpError(403, "request from another site refused")
            if path == "/login" and method == "POST":
                return self._login()
            query = parse_qs(split.query, keep_blank_values=False)
            if self.web.token and not token_matches(request_token(self.headers), self.web.token):
                given = (query.get("token") or [None])[0]
                if method == "GET" and path == "/" and given is not None and token_matches(given, self.web.token):
                    return self._send(303, b"", "text/plain", {"Location": "/", "Set-Cookie": session_cookie(given)})
                return self._refuse(method, path)
            for route in ROUTES:
                groups = route.match(method, path)
                if groups is not None:
                    return getattr(self, route.handler)(path, query, **groups)
            if any(re.fullmatch(r.pattern, path) for r in ROUTES):
                raise HttpError(405, f"{method} is not allowed here")
            raise HttpError(404, "no such page")
        except HttpError as exc:
            self._error(exc.status, str(exc))
        except UploadError as exc:
            self._error(exc.status, str(exc))
        except FaceEdgeError as exc:
            self._error(getattr(exc, "status", 400), str(exc))
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            self.close_connection = True
        except Exception as exc:  # a bug must answer 500, not kill the thread silently
            log.exception("web: %s %s failed", method, urlsplit(self.path).path)
            self._error(500, f"internal error: {type(exc).__name__}")

    def _error(self, status: int, message: str) -> None:
        try:
            self._json(status, {"error": message})
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            self.close_connection = True

    def _refuse(self, method: str, path: str) -> None:
        if method == "GET" and path == "/":
            return self._send(401, login_page(), "text/html; charset=utf-8", {"Content-Security-Policy": LOGIN_CSP})
        raise HttpError(401, "this face-edge needs its access token (Authorization: Bearer TOKEN); it is in the "
                             "token file (web.token_file, default web-token beside the gallery)")

    def _login(self) -> None:
        try:
            form = parse_qs(self._body().decode("utf-8", "replace"))
        except HttpError:
            raise
        given = (form.get("token") or [""])[0].strip()
        if self.web.token is None or token_matches(given, self.web.token):
            headers = {"Location": "/"}
            if self.web.token:
                headers["Set-Cookie"] = session_cookie(self.web.token)
            return self._send(303, b"", "text/plain", headers)
        log.warning("web: wrong token from %s", self.client_address[0])
        self._send(401, login_page("That is not the token."), "text/html; charset=utf-8",
                   {"Content-Security-Policy": LOGIN_CSP})

    # ---- routes --------------------------------------------------------------------------------
    def page(self, path: str, query: dict[str, list[str]]) -> None:
        """The page and its two static files (from the package, chosen by exact path)."""
        body, ctype = self.web.static[path]
        headers = {"Content-Security-Policy": PAGE_CSP} if path == "/" else {}
        self._send(200, body, ctype, headers)

    def api_status(self, path: str, query: dict[str, list[str]]) -> None:
        """GET /api/status."""
        self._json(200, self.web.app.status())

    def api_people(self, path: str, query: dict[str, list[str]]) -> None:
        """GET /api/people."""
        self._json(200, self.web.app.people())

    def api_enroll(self, path: str, query: dict[str, list[str]]) -> None:
        """POST /api/people (multipart: name, photos, replace)."""
        parts = parse_multipart(self._body(), self.headers.get("Content-Type", ""))
        fields = {p.name: p.data.decode("utf-8", "replace") for p in parts if p.filename is None}
        photos = [(display_name(p.filename, f"photo {i + 1}"), p.data)
                  for i, p in enumerate(q for q in parts if q.filename is not None)]
        replace = fields.get("replace", "").strip().lower() in ("1", "true", "on", "yes")
        result = self.web.app.enroll(fields.get("name", ""), photos, replace=replace)
        self._json(200 if result.get("ok") else 400, result)

    def api_remove(self, path: str, query: dict[str, list[str]], name: str) -> None:
        """DELETE /api/people/<name>."""
        self._json(200, self.web.app.remove(unquote(name)))

    def api_rename(self, path: str, query: dict[str, list[str]], name: str) -> None:
        """POST /api/people/<name>/rename with {"name": new}."""
        new = self._json_body().get("name")
        if not isinstance(new, str):
            raise HttpError(400, 'send {"name": "the new name"}')
        self._json(200, self.web.app.rename(unquote(name), new))

    def api_events(self, path: str, query: dict[str, list[str]]) -> None:
        """GET /api/events?after=ID."""
        try:
            after = int((query.get("after") or ["0"])[0])
        except ValueError:
            raise HttpError(400, "after: expected an event id") from None
        app = self.web.app
        self._json(200, {"events": app.events.recent(after), "state": app.events.state.to_dict()})

    def api_thumbnail(self, path: str, query: dict[str, list[str]], id: str) -> None:
        """GET /api/events/<id>/face.jpg."""
        jpeg = self.web.app.events.thumbnail(int(id))
        if jpeg is None:
            raise HttpError(404, "no thumbnail for this event")
        self._send(200, jpeg, "image/jpeg")

    def api_wrong(self, path: str, query: dict[str, list[str]], id: str) -> None:
        """POST /api/events/<id>/wrong."""
        self._json(200, self.web.app.mark_wrong(int(id)))

    def api_recognize(self, path: str, query: dict[str, list[str]]) -> None:
        """POST /api/recognize: the image as the body (or multipart field ``image``), optional ``box=x,y,w,h``."""
        boxes = None
        if query.get("box"):
            if len(query["box"]) > MAX_BOXES:
                raise HttpError(400, f"at most {MAX_BOXES} boxes")
            boxes = [_box(text) for text in query["box"]]
        body = self._body()
        ctype = self.headers.get("Content-Type", "")
        if ctype.lower().startswith("multipart/"):
            images = [p.data for p in parse_multipart(body, ctype) if p.name == "image"]
            if not images:
                raise HttpError(400, "send the image in the form field 'image'")
            body = images[0]
        self._json(200, self.web.app.recognize(body, boxes))

    def api_live_stream(self, path: str, query: dict[str, list[str]]) -> None:
        """GET /api/live.mjpg: multipart JPEG frames at most web.live_fps a second, until the browser goes."""
        live = self._live()
        if live.viewers >= MAX_VIEWERS:
            raise HttpError(503, f"at most {MAX_VIEWERS} live views at once")
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.connection.settimeout(10)   # a browser that stops reading is dropped, never waited for long
        with live.watching():
            seq = 0
            while not self.web.stopping.is_set() and not live.closed:
                got = live.next_jpeg(seq, timeout=1.0)
                if got is None:
                    continue
                seq, jpeg = got
                self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg)
                                 + jpeg + b"\r\n")
                self.wfile.flush()

    def api_live_frame(self, path: str, query: dict[str, list[str]]) -> None:
        """GET /api/live.jpg: the next annotated frame."""
        live = self._live()
        with live.watching():
            got = live.next_jpeg(live.seq, timeout=5.0)
        if got is None:
            raise HttpError(503, "no frame within 5 s (is the camera lost? see /api/status)")
        self._send(200, got[1], "image/jpeg")

    def _live(self) -> Any:
        live = self.web.app.live
        if live is None:
            raise HttpError(404, "no live view: this face-edge runs no camera loop (face-edge serve --no-camera)")
        return live


def _box(text: str) -> tuple[int, int, int, int]:
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        raise HttpError(400, f"box {text[:40]!r}: expected x,y,w,h in pixels") from None
    if min(x, y) < 0 or min(w, h) < 1:
        raise HttpError(400, f"box {text[:40]!r}: x and y must be >= 0, w and h >= 1")
    return x, y, w, h


__all__ = ["ROUTES", "Route", "WebServer", "login_page"]
