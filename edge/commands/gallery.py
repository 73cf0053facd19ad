"""``face-edge gallery list | remove NAME | export FILE | import FILE | reembed``: manage enrolled people."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Optional

from ..bundle import Manifest
from ..config import Settings
from ..errors import FaceEdgeError, GalleryError
from ..gallery import (Gallery, describe_threshold, gallery_lock, model_calibration, people_count, sample_count,
                       write_atomic)
from . import add_config_options, load_config


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``gallery`` sub-command and its actions."""
    p = subparsers.add_parser("gallery", help="list, remove, export, import or re-embed enrolled people",
                              description="Manage the gallery of enrolled people (recognition.gallery).")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = actions.add_parser("list", help="show the enrolled people, the model and the unknown threshold")
    rm = actions.add_parser("remove", help="remove a person")
    rm.add_argument("name", metavar="NAME")
    ex = actions.add_parser("export", help="copy the gallery to FILE (mode 0600; it holds biometric data)")
    ex.add_argument("file", metavar="FILE")
    im = actions.add_parser("import", help="add the people of a gallery FILE made with the same model")
    im.add_argument("file", metavar="FILE")
    im.add_argument("--replace", action="store_true", help="replace people enrolled in both")
    rb = actions.add_parser("reembed", help="re-embed kept photos with the current embedding model "
                                            "(only when recognition.keep_photos was on)")
    rb.add_argument("--bundle", metavar="DIR", help="embedding bundle folder (default: the configured one)")
    for action in (ls, rm, ex, im, rb):
        add_config_options(action)
    p.set_defaults(func=run)


def _configured_manifest(settings: Settings) -> Optional[Manifest]:
    """Return the configured embedding bundle's manifest, None when none is installed or it fails its checks."""
    from ..enroll import embedding_bundle

    try:
        return embedding_bundle(settings).manifest
    except FaceEdgeError:
        return None


def run(args: argparse.Namespace) -> int:
    """Run one gallery action; print what was done; return 0 (errors raise FaceEdgeError)."""
    settings = load_config(args)
    path = Path(settings.recognition.gallery)
    action: Any = {"list": _list, "remove": _remove, "export": _export, "import": _import,
                   "reembed": _reembed}[args.action]
    if args.action in ("list", "export"):
        return int(action(args, settings, path))
    with gallery_lock(path):  # one change at a time: concurrent read-change-save would lose one of them
        return int(action(args, settings, path))


def _list(args: argparse.Namespace, settings: Settings, path: Path) -> int:
    if not path.exists():
        print(f"no gallery yet at {path}: enroll someone with `face-edge enroll NAME --from DIR`")
        return 0
    gallery = Gallery.read(path)
    manifest = _configured_manifest(settings)
    gallery.threshold_override = settings.recognition.threshold
    if manifest is not None and (manifest.name, manifest.version) == (gallery.model_name, gallery.model_version):
        calibration = model_calibration(manifest)
        gallery.model_threshold, gallery.impostor_tail = calibration["model_threshold"], calibration["impostor_tail"]
    threshold, origin = gallery.threshold_and_source()
    photos = ", photos kept" if gallery.has_photos else ""
    print(f"{path}: model {gallery.model_name} v{gallery.model_version}, {people_count(len(gallery))}{photos}; "
          f"unknown above {gallery.distance} distance {describe_threshold(threshold, origin, gallery.model_threshold)}")
    if manifest is not None and (manifest.name, manifest.version) != (gallery.model_name, gallery.model_version):
        print(f"warning: the configured embedding model is {manifest.name} v{manifest.version}; "
              + ("run `face-edge gallery reembed`" if gallery.has_photos else "re-enroll everyone"))
    for person in gallery.list():
        print(f"  {person.name}\t{sample_count(person.samples)}\tenrolled {person.enrolled}")
    return 0


def _remove(args: argparse.Namespace, settings: Settings, path: Path) -> int:
    gallery = Gallery.read(path)
    dropped = gallery.remove(args.name)
    gallery.save(path)
    print(f"removed {args.name.strip()} ({sample_count(dropped)}) from {path}; {people_count(len(gallery))} left")
    return 0


def _export(args: argparse.Namespace, settings: Settings, path: Path) -> int:
    gallery = Gallery.read(path)   # refuses a corrupt gallery rather than exporting it
    write_atomic(Path(args.file), gallery.to_bytes(), check=Gallery.from_bytes)
    print(f"exported {people_count(len(gallery))} to {args.file} (mode 0600: it holds biometric data)")
    return 0


def _import(args: argparse.Namespace, settings: Settings, path: Path) -> int:
    incoming = Gallery.read(args.file)  # a corrupt file is refused here; the current gallery is not touched
    if path.exists():
        gallery = Gallery.read(path)
    else:
        gallery = Gallery(incoming.model_name, incoming.model_version, dim=incoming.dim, path=path)
    manifest = _configured_manifest(settings)
    if manifest is not None and (manifest.name, manifest.version) != (incoming.model_name, incoming.model_version):
        raise GalleryError(f"{args.file} was made with model {incoming.model_name} v{incoming.model_version}, "
                           f"the configured embedding model is {manifest.name} v{manifest.version}: re-enroll instead")
    names = gallery.merge(incoming, replace=args.replace)
    gallery.save(path)
    print(f"imported {people_count(len(names))} ({', '.join(names)}) into {path}; {people_count(len(gallery))}")
    return 0


def _reembed(args: argparse.Namespace, settings: Settings, path: Path) -> int:
    from ..enroll import embedding_bundle, make_enroller, reembed_gallery

    gallery = Gallery.read(path)
    bundle = embedding_bundle(settings, args.bundle)
    before = f"{gallery.model_name} v{gallery.model_version}"
    count = reembed_gallery(gallery, make_enroller(settings, bundle))
    gallery.save(path)
    print(f"re-embedded {count} photos of {people_count(len(gallery))}: model {before} -> "
          f"{bundle.manifest.name} v{bundle.manifest.version}")
    return 0
