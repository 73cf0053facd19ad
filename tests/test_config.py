"""edge.yaml and config validation: defaults, the shipped example, errors that name the key."""
from __future__ import annotations

import re

import pytest
import yaml

from edge.config import Settings, load_settings, settings_from_dict, settings_to_dict
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
    assert load_settings(path) == Settings()
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


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("source: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(bad)


def test_config_error_exit_code_is_2():
    assert ConfigError("x").exit_code == 2
