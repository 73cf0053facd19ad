"""Shared test fixtures: where ../shared is, and skipping cleanly where it is absent."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
DATA = SHARED / "data"


def shared_path(*parts: str) -> Path:
    """Return a path under ../shared, skipping the calling test when it does not exist."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: this test reads the shared data set beside the repository")
    return path


@pytest.fixture
def data_dir() -> Path:
    """Return ../shared/data (skips when absent)."""
    return shared_path("data")


@pytest.fixture
def hamilton_clip() -> Path:
    """Return the shared 640x360 clip with faces (skips when absent)."""
    return shared_path("data", "face_recognition_examples", "short_hamilton_clip.mp4")
