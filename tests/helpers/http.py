"""A few lines of HTTP for the web tests (the standard library's http.client, no extra package)."""
from __future__ import annotations

import http.client
import json
import uuid
from dataclasses import dataclass
from typing import Any, Optional, Sequence
from urllib.parse import urlsplit


@dataclass
class Reply:
    """One HTTP answer."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """Return the body as JSON."""
        return json.loads(self.body.decode("utf-8"))


def call(method: str, url: str, body: Optional[bytes] = None, headers: Optional[dict[str, str]] = None,
         timeout: float = 60.0) -> Reply:
    """Send one request to ``url`` (path may hold anything: it is sent as given) and return the Reply."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    path = url[url.index("/", len(parts.scheme) + 3):]
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        conn.close()


def multipart(fields: dict[str, str], files: Sequence[tuple[str, str, bytes]]) -> tuple[bytes, str]:
    """Return (body, content type) of a multipart/form-data form: ``files`` are (field, file name, bytes)."""
    boundary = uuid.uuid4().hex
    chunks: list[bytes] = []
    for name, value in fields.items():
        chunks.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for field, filename, data in files:
        chunks.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
                      f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"
