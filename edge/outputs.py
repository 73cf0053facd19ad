"""Builds the integrations a config asks for (``mqtt:``, ``web:``) and attaches them to a running pipeline.

``face-edge run``, ``face-edge serve`` and the service call :func:`attach_outputs`; it returns None
when neither is enabled, so a plain run is exactly as before.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Optional

from .config import Settings

log = logging.getLogger("face-edge")


@dataclass
class Outputs:
    """The integrations of one run: the hub, and the MQTT publisher and web server when enabled."""

    hub: Any
    mqtt: Any = None
    web: Any = None

    def status(self) -> dict[str, Any]:
        """Return the hub's status (view state, every integration's counters) and the page's address."""
        out = self.hub.status()
        if self.web is not None:
            out["web_url"] = self.web.url
        return out

    def status_line(self) -> str:
        """Return a few words for systemd's status line, e.g. ``mqtt connected, 0 dropped; web on``."""
        words = []
        if self.mqtt is not None:
            st = self.mqtt.stats()
            words.append(f"mqtt {'connected' if st['connected'] else 'offline'}, {st['queued']} queued, "
                         f"{st['dropped']} dropped")
        if self.web is not None:
            words.append(f"web {self.web.url}")
        return "; ".join(words)

    def close(self) -> None:
        """Stop the web server and close the hub (which flushes and closes the MQTT publisher)."""
        if self.web is not None:
            self.web.close()
        self.hub.close()


def attach_outputs(pipeline: Any, settings: Settings) -> Optional[Outputs]:
    """Start what ``settings.mqtt`` / ``settings.web`` enable and hook it onto ``pipeline``; None when neither is.

    ConfigError / WebError (one line) when paho-mqtt is missing, a TLS file does not exist, the port is
    taken or the token file is unsafe; nothing is left running then.
    """
    if not (settings.mqtt.enabled or settings.web.enabled):
        return None
    from .integrations import Hub

    hub = Hub(pipeline)
    outputs = Outputs(hub)
    try:
        if settings.mqtt.enabled:
            from .mqtt import MqttPublisher

            outputs.mqtt = MqttPublisher(settings.mqtt, status=lambda: _camera_attributes(pipeline))
            hub.add(outputs.mqtt)
        if settings.web.enabled:
            from .web.app import WebApp
            from .web.auth import load_or_create_token, needs_token, token_path
            from .web.events import EventLog
            from .web.live import LiveView
            from .web.server import WebServer

            token = load_or_create_token(token_path(settings)) if needs_token(settings.web.host) else None
            live = LiveView(settings.web.live_fps, settings.web.jpeg_quality)
            events = EventLog(settings.web.events_kept)
            hub.add(events)
            app = WebApp(settings, pipeline=pipeline, hub=hub, live=live, events=events)
            outputs.web = WebServer(app, token)
            pipeline.sinks.append(live)
        hub.attach()
        if outputs.mqtt is not None:
            outputs.mqtt.start()
        if outputs.web is not None:
            outputs.web.start()
    except BaseException:
        if outputs.web is not None:
            outputs.web.close()
        if outputs.mqtt is not None:
            outputs.mqtt.close(timeout=0.5)
        raise
    return outputs


def _camera_attributes(pipeline: Any) -> dict[str, Any]:
    """Return what MQTT's camera attributes show: fps, frames, source, models (read from another thread)."""
    st = pipeline.status()
    return {"fps": st.get("fps"), "frames": st.get("frame"), "source": st.get("source"), "lost": st.get("lost"),
            "models": st.get("models")}
