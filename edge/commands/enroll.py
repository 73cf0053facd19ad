"""``face-edge enroll NAME --from DIR | --camera [--source URI] [--count N]``: add a person to the gallery."""
from __future__ import annotations

import argparse
import dataclasses
from typing import Union

from ..enroll import MIN_SHARPNESS, EnrollResult, Sample, Skipped, embedding_bundle, frames_from, make_enroller
from ..errors import GalleryError, SourceError
from ..gallery import check_name
from ..people import cannot_enroll, load_gallery, sample_line, save_enrollment
from ..sources import open_source
from . import add_config_options, load_config


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``enroll`` sub-command."""
    p = subparsers.add_parser(
        "enroll", help="enroll a person from a folder of photos or from the camera",
        description="Detect one sharp, frontal face per photo or frame, embed it with the embedding bundle "
                    "and add it to the gallery under NAME (more samples when NAME is already enrolled). "
                    "Photos with no face or several faces are skipped with a message naming the file.")
    p.add_argument("name", metavar="NAME", help="the person's name (letters, digits, spaces, - or _)")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--from", dest="from_dir", metavar="DIR", help="a folder of photos of this one person")
    how.add_argument("--camera", action="store_true", help="capture good frames from the camera (source.uri)")
    p.add_argument("--source", metavar="URI", help="with --camera: the source instead of source.uri "
                                                   "(0, /dev/video0, picamera, a video file)")
    p.add_argument("--count", type=int, default=5, metavar="N", help="with --camera: good frames to capture (5)")
    p.add_argument("--seconds", type=float, default=60.0, help="with --camera: give up after this long (60)")
    p.add_argument("--replace", action="store_true", help="drop NAME's earlier samples first")
    p.add_argument("--bundle", metavar="DIR", help="embedding bundle folder (default: the configured one)")
    p.add_argument("--min-sharpness", type=float, default=MIN_SHARPNESS,
                   help=f"variance-of-Laplacian floor for a face (default {MIN_SHARPNESS:.0f})")
    add_config_options(p)
    p.set_defaults(func=run)


def _show(item: Union[Sample, Skipped]) -> None:
    print(f"  {sample_line(item)}")


def run(args: argparse.Namespace) -> int:
    """Enroll NAME; print one line per photo or frame and a summary; return 0 (errors raise FaceEdgeError)."""
    name = check_name(args.name)
    settings = load_config(args)
    bundle = embedding_bundle(settings, args.bundle)
    manifest = bundle.manifest
    load_gallery(settings, manifest)  # a corrupt gallery or one from another model is refused before any work
    enroller = make_enroller(settings, bundle, args.min_sharpness)
    if args.from_dir:
        result = enroller.from_folder(args.from_dir)
        if not result.samples:
            raise GalleryError(cannot_enroll(name, result, f"photo in {args.from_dir}"))
        for item in [*result.samples, *result.skipped]:
            _show(item)
    else:
        if args.source is None and str(settings.source.uri).strip() == "demo":
            raise SourceError("enroll --camera: source.uri is the demo clip; give --source 0, /dev/video0 or "
                              "picamera, or set source.uri in the config")
        # Files (a clip standing in for the camera) are read once, as fast as they decode.
        src_settings = dataclasses.replace(settings.source, loop=False, realtime=False)
        source = open_source(src_settings, args.source)
        print(f"capturing {args.count} good frames of {name} from {source.name}: look at the camera, "
              "turn slightly between frames")
        try:
            result = enroller.from_frames(frames_from(source, args.seconds), args.count,
                                          on_frame=lambda _i, item: _show(item) if isinstance(item, Sample) else None)
        finally:
            source.close()
        if not result.samples:
            raise GalleryError(cannot_enroll(name, result, "camera frame"))
        _summarise_skips(result)
    enrolled = save_enrollment(settings, manifest, name, result, replace=args.replace)
    for warning in enrolled.warnings:
        print(f"  warning: {warning}")
    print(enrolled.message)
    return 0


def _summarise_skips(result: EnrollResult) -> None:
    reasons: dict[str, int] = {}
    for s in result.skipped:
        reason = s.reason.split(" (")[0]  # group "too blurred (sharpness 3 < 50)" and "(... 7 < 50)"
        reasons[reason] = reasons.get(reason, 0) + 1
    for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1]):
        print(f"  skipped {n} frames: {reason}")
