"""edge.yaml and config validation: defaults, the shipped example, errors that name the key."""
from __future__ import annotations

import re

import pytest
import yaml

from edge.config import Settings, load_settings, resolve_paths, settings_from_dict, settings_to_dict
from edge.errors import ConfigError

from .conftest import REPO


def _keys(data: dict, prefix: str = "", leaves_only: bool = False) -> set[str]:
    out = set()
    for key, value in data.items():
        if isinstance(value, dict):
            out |= _keys(value, prefix + key + ".", leaves_only)
            if leaves_only:
                continue
        out.add(prefix + key)
    return out


def test_shipped_edge_yaml_sets_every_key_to_its_default():
    path = REPO / "edge.yaml"
    # its relative paths (models, gallery/gallery.npz) are the defaults, resolved against the repository
    assert load_settings(path) == resolve_paths(Settings(), yaml.safe_load(path.read_text()), REPO)
    assert load_settings(path).models.dir == str(REPO / "models")
    written = _keys(yaml.safe_load(path.read_text()))
    assert written == _keys(settings_to_dict(Settings())), "edge.yaml must list every key"


def test_shipped_edge_yaml_documents_every_key():
    lines = (REPO / "edge.yaml").read_text().splitlines()
    for key in _keys(settings_to_dict(Settings()), leaves_only=True):
        leaf = key.split(".")[-1]
        line = next((ln for ln in lines if re.match(rf"\s*{leaf}:", ln)), None)
        assert line is not None, key
        if leaf not in ("title", "height", "bundles"):   # self-explanatory, or documented beside a sibling
            assert "#" in line, f"{key} has no comment in edge.yaml"


def test_no_file_gives_defaults_and_demo_source():
    settings = load_settings(None)
    assert settings.source.uri == "demo" and settings.models.dir == "models"


def test_unknown_key_is_named(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("detector:\n  min_sise: 30\n")
    with pytest.raises(ConfigError, match=r"detector\.min_sise: unknown key"):
        load_settings(path)


def test_wrong_type_is_named(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("detector:\n  min_size: big\n")
    with pytest.raises(ConfigError, match=r"detector\.min_size: expected int, got 'big'"):
        load_settings(path)


def test_out_of_range_is_named():
    with pytest.raises(ConfigError, match=r"tracker\.vote_min"):
        settings_from_dict({"tracker": {"vote_min": 9, "vote_window": 5}})
    with pytest.raises(ConfigError, match=r"recognition\.min_face_px: must be 0 \(name every face\) or more"):
        settings_from_dict({"recognition": {"min_face_px": -1}})
    with pytest.raises(ConfigError, match=r"source\.speed: must be a positive factor"):
        settings_from_dict({"source": {"speed": 0}})


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("source: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(bad)


def test_config_error_exit_code_is_2():
    assert ConfigError("x").exit_code == 2


def test_a_config_that_is_not_utf8_is_one_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes("source:\n  uri: café.mp4\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"line 2 is not UTF-8 text \(byte 0xe9\); save the file as UTF-8"):
        load_settings(path)


def test_a_key_given_twice_is_an_error_naming_both_lines(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("models:\n  dir: /opt/models\n  num_threads: 2\n  dir: models\n")
    with pytest.raises(ConfigError, match=r"line 4: key 'dir' is given twice \(first on line 2\)"):
        load_settings(path)
    path.write_text("source:\n  uri: 0\nsource:\n  fps: 10\n")
    with pytest.raises(ConfigError, match=r"key 'source' is given twice"):
        load_settings(path)


def test_relative_paths_in_a_config_file_are_relative_to_its_folder(tmp_path, monkeypatch):
    folder = tmp_path / "site"
    folder.mkdir()
    path = folder / "edge.yaml"
    path.write_text("source:\n  uri: clips/door.mp4\nmodels:\n  dir: ../models\n  public_key: keys/pub.pem\n"
                    "recognition:\n  gallery: gallery.npz\noutput:\n  record: out/rec.mp4\n  events: /var/e.jsonl\n"
                    "detector:\n  cascade: alt2\n")
    monkeypatch.chdir(tmp_path)                  # started from elsewhere: the file's folder still counts
    s = load_settings(path)
    assert s.source.uri == str(folder / "clips" / "door.mp4")
    assert s.models.dir == str(tmp_path / "models") and s.models.public_key == str(folder / "keys" / "pub.pem")
    assert s.recognition.gallery == str(folder / "gallery.npz") and s.output.record == str(folder / "out" / "rec.mp4")
    assert s.output.events == "/var/e.jsonl" and s.detector.cascade == "alt2"      # absolute, and a name
    assert s.service.control_socket is None
    for uri in ("demo", "0", "picamera", "rtsp://cam.local/live", "http://10.0.0.2:8080/video"):
        path.write_text(f"source:\n  uri: {uri}\n")
        assert load_settings(path).source.uri == uri                          # not paths
    path.write_text("detector:\n  cascade: cascades/mine.xml\n")
    assert load_settings(path).detector.cascade == str(folder / "cascades" / "mine.xml")
    assert load_settings(None).models.dir == "models"                          # no file: relative to where it runs
