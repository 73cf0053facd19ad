"""face-train centre RUN: store the embedding centre (mean training embedding) in a recognition run."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..errors import RunError
from ..run import read_run, update_run


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``centre``: compute a recognition run's embedding centre and write it into run.yaml."""
    parser = subparsers.add_parser("centre", help="store a recognition RUN's embedding centre in run.yaml")
    parser.add_argument("run", help="recognition RUN folder")
    parser.add_argument("--data", default=None, help="shared data folder (default: the run's data root)")
    parser.add_argument("--version", default=None, help="new model version (galleries of the old one re-enroll)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Compute the centre over the run's training CelebA faces, update run.yaml, print its norm."""
    from ..tasks import recognition as rec

    run_ = read_run(args.run)
    if run_.info.get("task") != rec.MANIFEST_TASK:
        raise RunError(f"{args.run}: not a recognition run (task {run_.info.get('task')!r})")
    data = run_.info.get("data") or {}
    root = Path(args.data or data.get("root") or rec.DATA_ROOT)
    exclude = set(data.get("holdout_people", [])) | set(data.get("val_people", []))
    faces = rec.centre_faces({"celeba": rec.load_table("celeba", root)}, exclude)
    centre = rec.embedding_centre(run_.load_model(), faces)
    outputs = [dict(o, centre=[round(float(v), 6) for v in centre]) if o.get("name") == rec.EMBEDDING else o
               for o in run_.info["outputs"]]
    sections = {"outputs": outputs}
    if args.version:
        sections["version"] = args.version
    update_run(run_, **sections)
    print(f"{args.run}: centre of {len(faces)} training CelebA faces, norm {float(np.linalg.norm(centre)):.3f}")
    return 0
