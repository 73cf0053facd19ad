"""face-train predict MODEL IMAGES... --csv out.csv: every face of every photo, every output of any bundle or RUN."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import DataError

EPILOG = """\
MODEL is a bundle (models/attributes, models/multitask, models/embedding, models/landmarks, ...)
or a training RUN folder (its Keras model, on the same crops). Faces are found and cropped as
`face-edge recognize` does, so a bundle's rows are what the device computes. One row per face
(largest first): the box, every softmax class's probability, every sigmoid label's score and
decision, regression values and groups, landmark points, an embedding digest (--vectors: the
whole vector). A summary line says how many photos had no face and what was done with them.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``predict``: run a bundle or RUN on image files or folders, one CSV row per face."""
    parser = subparsers.add_parser("predict", help="predict on photos with a bundle or RUN; one CSV row per face",
                                   description=__doc__.splitlines()[0], epilog=EPILOG,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", metavar="MODEL", help="bundle folder or training RUN folder")
    parser.add_argument("images", nargs="+", metavar="IMAGE|DIR", help="image files or folders of images")
    parser.add_argument("--csv", default=None, help="CSV file to write (default: stdout)")
    parser.add_argument("--no-face", default="skip", choices=["skip", "whole"],
                        help="a photo where Haar finds no face: 'skip' (a row with face_found=0 and no predictions) "
                             "or 'whole' (the whole image is the face, for photos that are already face crops)")
    parser.add_argument("--largest", action="store_true", help="only the largest face of each photo")
    parser.add_argument("--vectors", action="store_true", help="embedding models: one column per vector component")
    parser.add_argument("--landmarks", default=None, metavar="FOLDER",
                        help="landmarks bundle for a model with an aligned crop (default: 'landmarks' beside "
                             "MODEL, else models/landmarks)")
    parser.add_argument("--config", default=None, metavar="EDGE_YAML",
                        help="use this edge.yaml's detector and models settings (runtime, threads, views, "
                             "public key), as the device does (default: the built-in defaults)")
    parser.set_defaults(func=run)


def expand_images(items: list[str]) -> list[Path]:
    """Return the image files named by ``items`` (folders' images in name order); DataError if there are none."""
    from edge.api import image_files

    paths = image_files(items)
    if not paths:
        raise DataError(f"no images found in {' '.join(items)}")
    return paths


def run(args: argparse.Namespace) -> int:
    """Predict every face of every photo and write the CSV; return 0, or 1 when a file could not be read."""
    from tqdm import tqdm

    from edge.config import load_settings

    from ..predict.predictor import Predictor
    from ..predict.table import BASE_COLUMNS, Tally, face_rows, write_csv

    paths = expand_images(args.images)
    settings = load_settings(args.config) if args.config else None
    predictor = Predictor(args.run, args.landmarks, settings, args.no_face)
    tally = Tally()
    bar = tqdm(paths, unit="photo", desc=f"predict {predictor.model.name}", disable=None, file=sys.stderr,
               leave=False)
    rows = list(face_rows(predictor, bar, args.largest, args.vectors, warn=bar.write, tally=tally))
    bar.close()
    header = BASE_COLUMNS + predictor.header()
    if args.csv:
        with open(args.csv, "w", newline="", encoding="utf-8") as out:
            write_csv(out, header, rows)
        print(tally.summary(args.no_face, args.csv))
    else:
        write_csv(sys.stdout, header, rows)
        print(tally.summary(args.no_face, "stdout"), file=sys.stderr)
    return 1 if tally.unreadable else 0
