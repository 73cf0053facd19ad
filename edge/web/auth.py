"""Who may use the web page: the token, its file, and the checks every request goes through.

On 127.0.0.1 / localhost / ::1 the page is open to the machine's own users (the Host header must
name a loopback host, so a web page elsewhere cannot reach it through DNS rebinding). On any other
address every request needs the token: ``Authorization: Bearer TOKEN``, or the ``face_edge_token``
cookie the login form sets (HttpOnly, SameSite=Strict). The token is made on first start
(``secrets.token_urlsafe(32)``) in a file of mode 0600; a token file others can read is refused.
"""
from __future__ import annotations

import hmac
import logging
import os
import secrets
from http.cookies import CookieError, SimpleCookie
from pathlib import Path
from typing import Mapping, Optional
from urllib.parse import urlsplit

from ..config import Settings
from ..errors import WebError

log = logging.getLogger("face-edge.web")

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
COOKIE = "face_edge_token"
MIN_TOKEN_LENGTH = 16


def needs_token(host: str) -> bool:
    """Return True when a server bound to ``host`` must ask every request for the token."""
    return host.strip("[]").lower() not in LOOPBACK_HOSTS


def token_path(settings: Settings) -> Path:
    """Return the token file: ``web.token_file``, else ``web-token`` beside the gallery file."""
    if settings.web.token_file:
        return Path(settings.web.token_file)
    return Path(settings.recognition.gallery).parent / "web-token"


def load_or_create_token(path: Path) -> str:
    """Return the token in ``path``, making the file (mode 0600, a new random token) when it does not exist.

    WebError when the file is readable by others than its owner or holds no usable token.
    """
    path = Path(path)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise WebError(f"web token file {path} is readable by others (mode {mode:o}): chmod 600 {path}, "
                           "or delete it to have a new token made") from None
        try:
            token = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise WebError(f"web token file {path}: cannot read ({exc.strerror or exc})") from None
        if len(token) < MIN_TOKEN_LENGTH or not token.isprintable() or " " in token:
            raise WebError(f"web token file {path} holds no usable token (at least {MIN_TOKEN_LENGTH} characters, "
                           "no spaces): delete it to have a new one made")
        log.info("web: the access token is in %s", path)
        return token
    except OSError as exc:
        raise WebError(f"web token file {path}: cannot create ({exc.strerror or exc})") from None
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(token + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    log.info("web: made a new access token in %s (mode 0600)", path)
    return token


def token_matches(given: Optional[str], token: Optional[str]) -> bool:
    """Return True when ``given`` is the token (compared in constant time)."""
    if not given or not token:
        return False
    return hmac.compare_digest(given.encode("utf-8"), token.encode("utf-8"))


def request_token(headers: Mapping[str, str]) -> Optional[str]:
    """Return the token a request carries: its ``Authorization: Bearer`` header, else its cookie."""
    auth = headers.get("Authorization") or ""
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    raw = headers.get("Cookie")
    if raw:
        try:
            morsel = SimpleCookie(raw).get(COOKIE)
        except CookieError:
            return None
        return morsel.value if morsel is not None else None
    return None


def session_cookie(token: str) -> str:
    """Return the Set-Cookie value that lets the browser send the token with every request."""
    return f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age=31536000"


def host_allowed(host_header: Optional[str], bound_host: str) -> bool:
    """Return False when a server on a loopback address is asked for a Host that is not a loopback name
    (a page elsewhere reaching it through DNS rebinding)."""
    if needs_token(bound_host):
        return True    # the token protects it
    if not host_header:
        return False
    name = urlsplit(f"//{host_header}").hostname or ""
    return name.lower() in LOOPBACK_HOSTS


def same_origin(origin: Optional[str], host_header: Optional[str]) -> bool:
    """Return True when a request that changes state comes from the page itself (no Origin header: not a browser
    page, e.g. curl)."""
    if origin is None:
        return True
    if origin == "null" or not host_header:
        return False
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc.lower() == host_header.lower()
