"""edge.yaml -> validated Settings. Every key has a default; an unknown key or a wrong type
is a ConfigError that names the key (``detector.min_size: expected int, got 'big'``).

A config file must be UTF-8 YAML without duplicate keys (either is a one-line ConfigError), and
the relative paths written in it are resolved against the file's own folder (:data:`PATH_KEYS`),
so a run from any working directory finds the same models, gallery and outputs."""
from __future__ import annotations

import dataclasses
import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import yaml

from .errors import ConfigError


@dataclass
class SourceSettings:
    """Where frames come from."""

    uri: str = "demo"              # demo | 0 | /dev/video0 | picamera | clip.mp4 | folder/
    width: int = 640
    height: int = 480
    fps: int = 30
    loop: bool = False             # replay files and folders when they end (the demo clip always loops)
    realtime: bool = True          # pace files at their fps (False: as fast as possible)
    speed: float = 1.0             # paced files and folders play at this many times their frame rate
    reconnect_max_s: float = 10.0  # back-off ceiling when a camera disappears
    stall_s: float = 5.0           # a live camera that sends no frame this long is stalled: reopened


@dataclass
class DetectorSettings:
    """Haar cascade face detection."""

    cascade: str = "frontal_default"   # frontal_default | alt2 | lbp | path to an .xml
    downscale: float = 1.0             # search a frame scaled by this factor (1.0: full size, what finds the most)
    min_size: int = 40                 # smallest face side, in full-frame pixels
    scale_factor: float = 1.1
    min_neighbors: int = 5
    full_frame_every: int = 0          # 0: the whole frame is searched on a background thread, the loop searches
                                       # around faces and motion; N: the loop searches the whole frame every Nth frame
    search_budget_ms: float = 8.0      # while no face is tracked, a frame whose own search took less fills up to
                                       # this with slices of a whole-frame search (0: off)


@dataclass
class TrackerSettings:
    """IoU tracking and per-track voting."""

    iou: float = 0.3
    max_missed: int = 10               # frames a track survives without a detection
    refresh_every: int = 15            # rerun the models on a track every N frames
    vote_window: int = 5               # n: looks kept per track
    vote_min: int = 3                  # k: wins of the last n looks before a name is shown


@dataclass
class ModelSettings:
    """Which bundles run and how."""

    dir: str = "models"
    bundles: list = field(default_factory=lambda: ["attributes", "multitask", "landmarks", "embedding"])
    runtime: str = "auto"              # auto | ai_edge_litert | tflite_runtime | tensorflow
    num_threads: int = 1
    public_key: Optional[str] = None   # Ed25519 public key: unsigned bundles are refused when set
    views: bool = True                 # average over the test-time views a bundle lists (false: one call per face)


@dataclass
class RecognitionSettings:
    """Enrolled people and matching."""

    gallery: str = "gallery/gallery.npz"
    threshold: Optional[float] = None  # in the model's distance (edge.distance); None = calibrated from the gallery
    min_face_px: int = 40              # narrower faces are shown but not named (edge.gallery.MIN_NAME_FACE_PX)
    keep_photos: bool = False          # keep enrollment crops so a model change can re-embed


@dataclass
class DisplaySettings:
    """The on-screen window."""

    window: bool = True                # False or no DISPLAY: run headless
    title: str = "face-edge"
    show_fps: bool = True
    fullscreen: bool = False


@dataclass
class OutputSettings:
    """What is written besides the window."""

    record: Optional[str] = None       # annotated video file
    events: Optional[str] = None       # JSON-lines events (person appears / leaves)


@dataclass
class ServiceSettings:
    """systemd integration and hot reload."""

    control_socket: Optional[str] = None  # unix socket for status/reload; None = off
    watchdog: bool = True


# ---- integrations (issue 20): MQTT / Home Assistant and the local web page --------------------------------
@dataclass
class MqttSettings:
    """Events and presence to an MQTT broker, with Home Assistant discovery (``pip install face-edge[mqtt]``)."""

    enabled: bool = False
    host: str = "localhost"
    port: int = 1883
    device_id: Optional[str] = None    # names this camera in topics and Home Assistant; None = the hostname
    topic_prefix: str = "face-edge"    # topics are <topic_prefix>/<device_id>/...
    username: Optional[str] = None
    password_file: Optional[str] = None   # the password is read from this file ...
    password_env: str = "FACE_EDGE_MQTT_PASSWORD"  # ... or from this environment variable; never logged
    tls: bool = False
    ca_certs: Optional[str] = None     # CA file for TLS; None = the system's CAs
    certfile: Optional[str] = None     # client certificate and key, when the broker asks for one
    keyfile: Optional[str] = None
    qos: int = 1
    keepalive: int = 30
    queue_size: int = 1000             # events kept while the broker is away; beyond it the oldest are dropped
    reconnect_max_s: float = 60.0      # reconnect back-off doubles from 1 s up to this
    discovery: bool = True             # Home Assistant MQTT discovery
    discovery_prefix: str = "homeassistant"


@dataclass
class WebSettings:
    """The local web page and JSON API (``face-edge serve``)."""

    enabled: bool = False
    host: str = "127.0.0.1"            # any other address needs the token on every request
    port: int = 8080
    token_file: Optional[str] = None   # None = web-token beside the gallery file (made on first start, mode 0600)
    live_fps: float = 5.0              # frame-rate cap of the live view
    jpeg_quality: int = 70
    max_upload_mb: float = 20.0        # largest request body
    max_image_megapixels: float = 25.0 # larger images are refused before they are decoded
    events_kept: int = 100             # recent events (with face thumbnails) the page shows


@dataclass
class Settings:
    """Everything a user can set in edge.yaml."""

    source: SourceSettings = field(default_factory=SourceSettings)
    detector: DetectorSettings = field(default_factory=DetectorSettings)
    tracker: TrackerSettings = field(default_factory=TrackerSettings)
    models: ModelSettings = field(default_factory=ModelSettings)
    recognition: RecognitionSettings = field(default_factory=RecognitionSettings)
    display: DisplaySettings = field(default_factory=DisplaySettings)
    output: OutputSettings = field(default_factory=OutputSettings)
    service: ServiceSettings = field(default_factory=ServiceSettings)
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    web: WebSettings = field(default_factory=WebSettings)
    log_level: str = "info"


def _check_value(value: Any, hint: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    if origin is Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _check_value(value, args[0], key)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, key)
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            return str(value)
    elif hint is list or origin is list:
        if isinstance(value, list):
            return value
    else:
        return value
    name = getattr(hint, "__name__", str(hint))
    raise ConfigError(f"{key}: expected {name}, got {value!r}")


def _build(cls: type, data: Any, prefix: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping of keys, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            where = f"{prefix}.{key}" if prefix else str(key)
            raise ConfigError(f"{where}: unknown key (known: {', '.join(sorted(names))})")
    kwargs = {}
    for key, value in data.items():
        where = f"{prefix}.{key}" if prefix else key
        kwargs[key] = _check_value(value, hints[key], where)
    return cls(**kwargs)


def settings_from_dict(data: Any) -> Settings:
    """Return validated Settings from a dict (as read from YAML); ConfigError names a bad key."""
    settings = _build(Settings, data, "")
    _check_ranges(settings)
    return settings


def _check_ranges(s: Settings) -> None:
    checks = [
        ("detector.downscale", 0 < s.detector.downscale <= 1, "a number in (0, 1]"),
        ("detector.scale_factor", s.detector.scale_factor > 1.0, "a number above 1.0"),
        ("detector.min_size", s.detector.min_size >= 8, "at least 8"),
        ("detector.min_neighbors", s.detector.min_neighbors >= 0, "0 or more"),
        ("detector.full_frame_every", s.detector.full_frame_every >= 0, "0 (background) or more"),
        ("detector.search_budget_ms", s.detector.search_budget_ms >= 0, "0 (off) or more milliseconds"),
        ("source.stall_s", s.source.stall_s > 0, "a positive number of seconds"),
        ("source.speed", s.source.speed > 0, "a positive factor of the file's frame rate (2: twice as fast)"),
        ("tracker.iou", 0 < s.tracker.iou < 1, "a number in (0, 1)"),
        ("tracker.refresh_every", s.tracker.refresh_every >= 1, "at least 1"),
        ("tracker.vote_min", 1 <= s.tracker.vote_min <= s.tracker.vote_window,
         "between 1 and tracker.vote_window"),
        ("models.num_threads", s.models.num_threads >= 1, "at least 1"),
        ("recognition.min_face_px", s.recognition.min_face_px >= 0, "0 (name every face) or more pixels"),
        ("source.width", s.source.width > 0, "positive"),
        ("source.height", s.source.height > 0, "positive"),
        ("source.fps", s.source.fps > 0, "positive"),
        ("log_level", s.log_level.lower() in ("debug", "info", "warning", "error"),
         "one of debug, info, warning, error"),
    ]
    for key, ok, want in checks:
        if not ok:
            raise ConfigError(f"{key}: must be {want}")
    if s.recognition.threshold is not None and not 0 < s.recognition.threshold < 2:
        raise ConfigError("recognition.threshold: must be a distance in (0, 2), in the embedding model's own "
                          "distance (`face-edge gallery list` shows which and the threshold in use)")
    if not all(isinstance(b, str) and b for b in s.models.bundles):
        raise ConfigError("models.bundles: must be a list of bundle folder names")
    _check_integrations(s)


def _check_integrations(s: Settings) -> None:
    m, w = s.mqtt, s.web
    checks = [
        ("mqtt.port", 0 < m.port < 65536, "a port number (1-65535)"),
        ("mqtt.qos", m.qos in (0, 1, 2), "0, 1 or 2"),
        ("mqtt.keepalive", m.keepalive >= 5, "at least 5 (seconds)"),
        ("mqtt.queue_size", m.queue_size >= 1, "at least 1"),
        ("mqtt.reconnect_max_s", m.reconnect_max_s >= 1, "at least 1 (second)"),
        ("mqtt.topic_prefix", _topic_part(m.topic_prefix, slashes=True), "a topic without +, # or leading/trailing /"),
        ("mqtt.discovery_prefix", _topic_part(m.discovery_prefix), "one topic level without +, # or /"),
        ("mqtt.device_id", m.device_id is None or _topic_part(m.device_id), "one topic level without +, # or /"),
        ("web.port", 0 <= w.port < 65536, "a port number (0: any free port)"),
        ("web.live_fps", 0 < w.live_fps <= 30, "a number in (0, 30]"),
        ("web.jpeg_quality", 10 <= w.jpeg_quality <= 100, "between 10 and 100"),
        ("web.max_upload_mb", 0 < w.max_upload_mb <= 200, "a number in (0, 200]"),
        ("web.max_image_megapixels", 0 < w.max_image_megapixels <= 100, "a number in (0, 100]"),
        ("web.events_kept", 1 <= w.events_kept <= 10000, "between 1 and 10000"),
    ]
    for key, ok, want in checks:
        if not ok:
            raise ConfigError(f"{key}: must be {want}")
    if (m.certfile is None) != (m.keyfile is None):
        raise ConfigError("mqtt.certfile and mqtt.keyfile: give both (a client certificate and its key) or neither")


def _topic_part(text: str, slashes: bool = False) -> bool:
    """Return True when ``text`` can stand in an MQTT topic we publish to (no wildcards, no empty levels)."""
    if not text or any(c in text for c in "+#\0") or text.startswith("/") or text.endswith("/"):
        return False
    return ("/" not in text or slashes) and "//" not in text


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key given twice in one mapping is an error (YAML
    itself lets the last one win silently, so a typo'd duplicate would undo a setting)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise ConfigError(f"line {line}: key {key!r} is given twice (first on line {seen[key]})")
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


# Settings that name a file or folder. Written relative in a config file, they are relative to
# that file's folder (not to wherever face-edge happens to be started).
PATH_KEYS = (("models", "dir"), ("models", "public_key"), ("recognition", "gallery"), ("output", "record"),
             ("output", "events"), ("service", "control_socket"), ("detector", "cascade"), ("source", "uri"),
             ("mqtt", "password_file"), ("mqtt", "ca_certs"), ("mqtt", "certfile"), ("mqtt", "keyfile"),
             ("web", "token_file"))
_NOT_A_PATH = re.compile(r"^(demo|picamera2?|pi|\d+|[a-zA-Z][a-zA-Z0-9+.-]*://.*)$")


def _is_relative_path(key: tuple[str, str], value: Any) -> bool:
    if not isinstance(value, str) or not value or Path(value).is_absolute():
        return False
    if key == ("source", "uri") and _NOT_A_PATH.match(value):
        return False           # a camera index, the demo, the Pi camera or a stream URL
    if key == ("detector", "cascade") and not value.endswith(".xml"):
        return False           # a cascade name (frontal_default, ...), not a file
    return True


def resolve_paths(settings: Settings, data: Any, base: Path) -> Settings:
    """Return ``settings`` with the relative paths that ``data`` (the file's dict) sets made relative to ``base``."""
    if not isinstance(data, Mapping):
        return settings
    for section, key in PATH_KEYS:
        given = data.get(section)
        if not isinstance(given, Mapping) or key not in given:
            continue
        part = getattr(settings, section)
        value = getattr(part, key)
        if _is_relative_path((section, key), value):
            setattr(part, key, os.path.normpath(base / value))
    return settings


def load_settings(path: Optional[Union[str, Path]] = None) -> Settings:
    """Return Settings from the YAML file at ``path`` (defaults when ``path`` is None).

    Relative paths in the file are resolved against the file's folder; a file that is not
    UTF-8, not YAML, has a key twice or a bad key or value raises ConfigError (one line).
    """
    if path is None:
        return Settings()
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a folder, not a YAML file") from None
    except OSError as exc:
        raise ConfigError(f"config file {path}: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise ConfigError(f"config file {path}: line {line} is not UTF-8 text (byte 0x{raw[exc.start]:02x}); "
                          "save the file as UTF-8") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except ConfigError as exc:
        raise ConfigError(f"config file {path}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"config file {path}: not valid YAML{at}") from None
    try:
        settings = settings_from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return resolve_paths(settings, data, path.resolve().parent)


def settings_to_dict(settings: Settings) -> dict[str, Any]:
    """Return ``settings`` as a plain dict (the shape of edge.yaml)."""
    return dataclasses.asdict(settings)
