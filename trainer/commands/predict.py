"""face-train predict RUN IMAGES... --csv out.csv: one row per image with every output."""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from ..errors import DataError
from ..infer import crop_files, model_outputs, rows_for
from ..run import read_run

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".webp"}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``predict``: run a RUN's Keras model on image files (or folders of images)."""
    parser = subparsers.add_parser("predict", help="predict on images; one CSV row per image")
    parser.add_argument("run", help="RUN folder (or a bundle folder, for tasks that support it)")
    parser.add_argument("images", nargs="+", help="image files or folders")
    parser.add_argument("--csv", default=None, help="CSV file to write (default: stdout)")
    parser.set_defaults(func=run)


def expand_images(items: list[str]) -> list[Path]:
    """Return the image files named by ``items`` (folders expanded, sorted); DataError if none."""
    paths: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            paths += sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        elif p.is_file():
            paths.append(p)
        else:
            raise DataError(f"{item}: no such image file or folder")
    if not paths:
        raise DataError(f"no images found in {' '.join(items)}")
    return paths


def _task_predict(folder: str):
    """Return the ``predict_command`` of the task that made ``folder`` (RUN or bundle), or None."""
    import yaml

    from ..tasks import task_of_run

    for name in ("run.yaml", "manifest.yaml"):
        path = Path(folder) / name
        if path.is_file():
            try:
                info = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
                return getattr(task_of_run(info), "predict_command", None)
            except Exception:
                return None
    return None


def run(args: argparse.Namespace) -> int:
    """Crop every image like the device, predict, and write the CSV."""
    handler = _task_predict(args.run)  # tasks with their own CSV columns (e.g. multitask) handle it
    if handler is not None:
        return handler(args)
    run_ = read_run(args.run)
    paths = expand_images(args.images)
    crops, detected = crop_files(paths, run_)
    header, rows = rows_for(run_, model_outputs(run_.load_model(), crops))
    out = open(args.csv, "w", newline="") if args.csv else sys.stdout
    try:
        writer = csv.writer(out)
        writer.writerow(["image", "face_detected"] + header)
        for path, found, row in zip(paths, detected, rows):
            writer.writerow([str(path), int(found)] + list(row))
    finally:
        if args.csv:
            out.close()
    if args.csv:
        print(f"wrote {len(rows)} rows to {args.csv}")
    return 0
