"""``face-edge recognize PHOTO|DIR... [--json] [--vectors]``: who is in these photos, decided as the live loop decides."""
from __future__ import annotations

import argparse
import json
import sys

from . import add_config_options, load_config


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``recognize`` sub-command."""
    p = subparsers.add_parser(
        "recognize", help="name the faces in photos with the gallery (as the live loop does)",
        description="For each photo, every face with its box, the enrolled name or 'unknown' and the distance, "
                    "decided as the live loop decides one look: the same detector cascade (at full resolution), "
                    "landmarks, aligned chip, embedding model and gallery threshold. Other loaded models add "
                    "their attributes.")
    p.add_argument("photos", nargs="+", metavar="PHOTO|DIR", help="image files or folders of images")
    p.add_argument("--json", action="store_true", help="one JSON object per photo (JSON lines)")
    p.add_argument("--vectors", action="store_true", help="add each face's embedding (with --json)")
    add_config_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print each photo's faces; return 0, or 1 when a photo could not be read."""
    from ..api import Analyzer, image_files, load_image
    from ..errors import SourceError

    settings = load_config(args)
    analyzer = Analyzer.from_config(settings=settings)
    if analyzer.gallery is None:
        print(f"face-edge: warning: nobody is enrolled in {settings.recognition.gallery}: every face is "
              "'unknown' (enroll people with `face-edge enroll NAME --from DIR`)", file=sys.stderr)
    threshold = analyzer.gallery.threshold if analyzer.gallery is not None else None
    unreadable = 0
    for path in image_files(args.photos):
        try:
            image = load_image(path)
        except SourceError as exc:
            unreadable += 1
            print(f"face-edge: warning: {exc}", file=sys.stderr)
            continue
        faces = analyzer.analyze(image)
        if args.json:
            print(json.dumps({"photo": str(path), "threshold": threshold,
                              "faces": [f.to_dict(vectors=args.vectors) for f in faces]}))
            continue
        if not faces:
            print(f"{path}: no face found")
        for face in faces:
            who = face.name or "unknown"
            dist = f" (distance {face.distance:.3f})" if face.distance is not None else ""
            extra = ", ".join(f"{k} {v}" for k, v in face.summary.items() if v not in (None, [], ""))
            skipped = f" [{'; '.join(face.skipped.values())}]" if face.skipped else ""
            print(f"{path}: {who}{dist} at {face.box[0]},{face.box[1]} {face.box[2]}x{face.box[3]}"
                  f"{(': ' + extra) if extra else ''}{skipped}")
    return 1 if unreadable else 0
