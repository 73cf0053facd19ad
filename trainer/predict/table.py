"""Photos -> CSV rows (one per face) and the summary line that says what happened to every photo."""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, TextIO

from edge.api import load_image
from edge.errors import SourceError

from .predictor import Predictor

BASE_COLUMNS = ["image", "face", "face_found", "x", "y", "w", "h"]


@dataclass
class Tally:
    """What happened to the photos: read, faces predicted, no face found, faces skipped, unreadable."""

    photos: int = 0
    faces: int = 0
    no_face: int = 0
    skipped: int = 0
    unreadable: list[str] = field(default_factory=list)

    def summary(self, no_face: str, destination: str) -> str:
        """Return the one-line summary (``no_face``: what was done with photos without a face)."""
        with_faces = self.photos - self.no_face
        text = f"{self.faces} face{'s' * (self.faces != 1)} in {with_faces} of {self.photos} photos -> {destination}"
        if self.no_face:
            what = ("predicted on the whole image taken as the face (face_found=0)" if no_face == "whole" else
                    "one row each with face_found=0 and no predictions (--no-face whole predicts on the whole image)")
            text += f"; {self.no_face} photo{'s' * (self.no_face != 1)} with no face Haar could find: {what}"
        if self.skipped:
            text += (f"; {self.skipped} face{'s' * (self.skipped != 1)} the model could not look at "
                     "(reason in the skipped column)")
        if self.unreadable:
            text += f"; {len(self.unreadable)} unreadable file{'s' * (len(self.unreadable) != 1)} left out"
        return text


def face_rows(predictor: Predictor, paths: Iterable[Path], largest: bool = False, vectors: bool = False,
              warn: Callable[[str], None] = print, tally: Optional[Tally] = None) -> Iterable[dict[str, Any]]:
    """Yield one CSV row dict per face of each photo (a face-less photo: one row with face_found 0 unless it
    was predicted whole), counting in ``tally``; an unreadable photo is reported through ``warn`` and left out."""
    tally = tally if tally is not None else Tally()
    for path in paths:
        try:
            image = load_image(path)
        except SourceError as exc:
            tally.unreadable.append(str(path))
            warn(f"face-train: warning: {exc}")
            continue
        tally.photos += 1
        results = predictor.faces(image, largest)
        if not results or not results[0]["face_found"]:
            tally.no_face += 1
        if not results:
            yield {"image": str(path), "face_found": 0}
            continue
        for index, result in enumerate(results, 1):
            tally.faces += 1
            tally.skipped += "skipped" in result
            x, y, w, h = result["box"]
            row = {"image": str(path), "face": index, "face_found": int(result["face_found"]),
                   "x": x, "y": y, "w": w, "h": h, **predictor.columns(result, vectors)}
            if "skipped" in result:
                row["skipped"] = result["skipped"]
            yield row


def write_csv(out: TextIO, header: list[str], rows: list[dict[str, Any]]) -> None:
    """Write ``rows`` under ``header`` plus any column first seen in the rows (embedding components, points,
    ``skipped``), in the order they first appear; missing values are empty."""
    columns = list(header)
    seen = set(columns)
    for row in rows:
        for key in row:
            if key not in seen:
                seen.add(key)
                columns.append(key)
    writer = csv.DictWriter(out, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
