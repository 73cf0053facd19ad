"""THE face-crop definitions shared by the device and the trainer.

Two kinds, named by a bundle's manifest (``crop.kind``):

- ``box`` (the default): a detector box (x, y, w, h) becomes a square around the box centre
  whose side is ``max(w, h) * (1 + 2 * margin)``, shifted by ``shift_y`` box heights
  (negative = up), cut from the frame with a replicated border where it leaves the frame,
  and resized to ``size`` x ``size`` (:func:`crop_face`).
- ``aligned``: five face landmarks (eye corners and nose, dlib's 5-point order) are mapped
  by a similarity transform onto a template face, exactly as ``dlib.get_face_chip(img, shape,
  size, padding=margin)`` places them, and the chip is cut with bilinear interpolation and a
  black border (:func:`crop_aligned`). The landmarks come from a ``landmarks`` bundle.

Train and device both call these functions, so a model sees the same pixels in training as
on the Pi.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping

import cv2
import numpy as np

Box = tuple[int, int, int, int]


def iou(a: Box, b: Box) -> float:
    """Return the intersection over union of two (x, y, w, h) boxes (0.0 when they do not overlap)."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = min(ax + aw, bx + bw) - max(ax, bx)
    ih = min(ay + ah, by + bh) - max(ay, by)
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / float(aw * ah + bw * bh - inter)


CROP_KINDS = ("box", "aligned")


@dataclass(frozen=True)
class CropSpec:
    """How a face becomes a model input: kind (box or aligned), margin per side, vertical shift, output size.

    For an aligned crop ``margin`` is dlib's ``padding`` of ``get_face_chip`` and ``shift_y`` is unused.
    """

    size: int = 96
    margin: float = 0.25
    shift_y: float = 0.0
    kind: str = "box"

    def __post_init__(self) -> None:
        if self.kind not in CROP_KINDS:
            raise ValueError(f"crop kind {self.kind!r} is not one of {', '.join(CROP_KINDS)}")

    @property
    def aligned(self) -> bool:
        """Return True for an aligned crop (it needs five landmarks, not only a box)."""
        return self.kind == "aligned"

    def to_dict(self) -> dict[str, Any]:
        """Return the spec as a plain dict, the form stored in manifests and run files (kind only when aligned)."""
        data = asdict(self)
        if not self.aligned:
            del data["kind"]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "CropSpec":
        """Return a CropSpec from a manifest/run dict; unknown keys or kinds are an error."""
        unknown = set(data) - {"size", "margin", "shift_y", "kind"}
        if unknown:
            raise ValueError(f"unknown crop keys: {sorted(unknown)}")
        return cls(size=int(data.get("size", 96)), margin=float(data.get("margin", 0.25)),
                   shift_y=float(data.get("shift_y", 0.0)), kind=str(data.get("kind", "box")))


def square_region(box: Box, spec: CropSpec) -> Box:
    """Return the square (x, y, side, side) in frame coordinates that :func:`crop_face` cuts."""
    x, y, w, h = box
    side = max(w, h) * (1.0 + 2.0 * spec.margin)
    cx = x + w / 2.0
    cy = y + h / 2.0 + spec.shift_y * h
    x0 = int(round(cx - side / 2.0))
    y0 = int(round(cy - side / 2.0))
    s = max(1, int(round(side)))
    return x0, y0, s, s


def crop_face(frame: np.ndarray, box: Box, spec: CropSpec) -> np.ndarray:
    """Return the ``spec.size`` square face crop of ``frame`` (same channel order and dtype).

    Parts of the square outside the frame are filled by replicating the border.
    """
    if frame is None or frame.size == 0:
        raise ValueError("empty frame")
    x0, y0, s, _ = square_region(box, spec)
    fh, fw = frame.shape[:2]
    pad_l, pad_t = max(0, -x0), max(0, -y0)
    pad_r, pad_b = max(0, x0 + s - fw), max(0, y0 + s - fh)
    xa, ya = max(0, x0), max(0, y0)
    xb, yb = min(fw, x0 + s), min(fh, y0 + s)
    if xb <= xa or yb <= ya:
        raise ValueError(f"face box {box} lies outside the {fw}x{fh} frame")
    patch = frame[ya:yb, xa:xb]
    if pad_l or pad_t or pad_r or pad_b:
        patch = cv2.copyMakeBorder(patch, pad_t, pad_b, pad_l, pad_r, cv2.BORDER_REPLICATE)
    interp = cv2.INTER_AREA if s > spec.size else cv2.INTER_LINEAR
    return cv2.resize(patch, (spec.size, spec.size), interpolation=interp)


def whole_image_box(frame: np.ndarray, spec: CropSpec) -> Box:
    """Return the box that, cropped with ``spec``, covers an already-aligned face image.

    Used when the detector finds nothing on a training image that is itself a face
    crop: the inverse of the margin is applied so the crop shows the same framing.
    """
    fh, fw = frame.shape[:2]
    side = min(fw, fh) / (1.0 + 2.0 * spec.margin)
    x = (fw - side) / 2.0
    y = (fh - side) / 2.0 - spec.shift_y * side
    return int(round(x)), int(round(y)), max(1, int(round(side))), max(1, int(round(side)))


# dlib's 5-point template (get_face_chip_details): the outer and inner corner of the eye on the
# image's right, the outer and inner corner of the other eye, the bottom of the nose, in a unit
# square face.
FIVE_POINT_TEMPLATE = np.array([[0.8595674595992, 0.2134981538014], [0.6460604764104, 0.2289674387677],
                                [0.1205750620789, 0.2137274526848], [0.3340850613712, 0.2290642403242],
                                [0.4901123135679, 0.6277975316475]])


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (A, t), the least-squares similarity with ``dst ~ A @ src + t`` (Umeyama, as dlib's
    find_similarity_transform: reflections are not allowed)."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mean_src, mean_dst = src.mean(0), dst.mean(0)
    a, b = src - mean_src, dst - mean_dst
    var_src = float((a ** 2).sum(1).mean())
    cov = b.T @ a / len(src)
    u, d, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(cov) < 0 or (np.linalg.det(cov) == 0 and np.linalg.det(u) * np.linalg.det(vt) < 0):
        sign[1, 1] = -1
    rotation = u @ sign @ vt
    scale = float(np.trace(np.diag(d) @ sign)) / var_src if var_src else 1.0
    return scale * rotation, mean_dst - scale * rotation @ mean_src


def aligned_chip_rect(points: np.ndarray, spec: CropSpec) -> tuple[np.ndarray, float, float]:
    """Return (centre, side, angle) of the frame rectangle an aligned chip covers, as dlib's chip_details.

    dlib fits a similarity from the template (scaled into the padded chip) to the landmarks and
    keeps its rotation and scale: the chip covers a square of ``size * scale`` pixels (dlib's
    ``centered_drect``: corner to corner ``size * scale - 1``) around the image of the chip centre.
    """
    points = np.asarray(points, np.float64).reshape(5, 2)
    size = spec.size
    template = (spec.margin + FIVE_POINT_TEMPLATE) / (2.0 * spec.margin + 1.0) * size
    a, t = similarity_transform(template, points)
    px, py = a @ np.array([1.0, 0.0])
    return a @ np.array([size / 2.0, size / 2.0]) + t, size * math.hypot(px, py), math.atan2(py, px)


def _rotated_corners(centre: np.ndarray, half: float, angle: float) -> np.ndarray:
    """Return the top-left, top-right and bottom-left corners of a square rotated by ``angle`` about ``centre``."""
    corners = np.array([[-half, -half], [half, -half], [-half, half]])
    c, s = math.cos(angle), math.sin(angle)
    return corners @ np.array([[c, s], [-s, c]]) + centre


def aligned_chip_corners(points: np.ndarray, spec: CropSpec) -> np.ndarray:
    """Return the frame coordinates of the chip's top-left, top-right and bottom-left pixel centres."""
    centre, side, angle = aligned_chip_rect(points, spec)
    return _rotated_corners(centre, (side - 1.0) / 2.0, angle)


def _dlib_pyramid_down(image: np.ndarray) -> np.ndarray:
    """Return dlib's pyramid_down<2> of a uint8 image: a [1 4 6 4 1]^2 / 256 filter at every second pixel,
    output pixel (c, r) centred on input (2c + 2, 2r + 2), truncated to uint8."""
    x = image.astype(np.uint16)
    rows, cols = (x.shape[0] - 3) // 2, (x.shape[1] - 3) // 2
    taps = (1, 4, 6, 4, 1)
    across = sum(k * x[:, j:j + 2 * cols:2] for j, k in enumerate(taps))
    down = sum(k * across[j:j + 2 * rows:2] for j, k in enumerate(taps))
    return (down // 256).astype(np.uint8)


def _point_down(p: np.ndarray) -> np.ndarray:
    """dlib's pyramid_down<2>::point_down (its own mapping of a point into the next level)."""
    return p / 2.0 - np.array([1.25, 0.75])


def crop_aligned(frame: np.ndarray, points: np.ndarray, spec: CropSpec) -> np.ndarray:
    """Return the ``spec.size`` aligned chip of the face whose five landmarks (frame pixels) are ``points``.

    The pixels of ``dlib.get_face_chip(img, shape, spec.size, spec.margin)``: bilinear sampling
    truncated to integers, black outside the frame, and, when the chip would cover more than
    twice its size, sampled from dlib's own image pyramid (the same filter, levels and offsets),
    so large faces are not aliased. Up to OpenCV's 1/32-pixel interpolation steps it is dlib's chip.
    """
    if frame is None or frame.size == 0:
        raise ValueError("empty frame")
    centre, side, angle = aligned_chip_rect(points, spec)
    if not (np.all(np.isfinite(centre)) and math.isfinite(side) and side > 1.0):
        raise ValueError("landmarks give no usable alignment")
    size = spec.size
    half = (side - 1.0) / 2.0
    # dlib: the level is the last whose halved rectangle still has more pixels than the chip.
    tl, br = centre - half, centre + half
    depth = 0
    down_tl, down_br = _point_down(tl), _point_down(br)
    while np.prod(down_br - down_tl + 1.0) > size * size:
        down_tl, down_br = _point_down(down_tl), _point_down(down_br)
        depth += 1
    # Only the part of the frame the chip covers (dlib's bounding box: 2 pixels more, and more per level).
    corners = _rotated_corners(centre, half, angle)
    corners = np.vstack([corners, corners[1] + corners[2] - corners[0]])
    grow = 2.0
    for _ in range(depth):
        grow = grow * 2.0 + 2.0
    fh, fw = frame.shape[:2]
    x0, y0 = (int(math.floor(v + 0.5)) for v in np.maximum(corners.min(0) - grow, 0.0))
    x1 = int(math.floor(min(corners[:, 0].max() + grow, fw - 1) + 0.5))
    y1 = int(math.floor(min(corners[:, 1].max() + grow, fh - 1) + 0.5))
    if x1 < x0 or y1 < y0:
        raise ValueError("the aligned face lies outside the frame")
    image = frame[y0:y1 + 1, x0:x1 + 1]
    tl, br = tl - np.array([x0, y0]), br - np.array([x0, y0])
    for _ in range(depth):
        if min(image.shape[:2]) <= 8:
            break
        image = _dlib_pyramid_down(image)
        tl, br = _point_down(tl), _point_down(br)
    centre, half = (tl + br) / 2.0, (br[0] - tl[0]) / 2.0
    corners = _rotated_corners(centre, half, angle)
    last = size - 1
    # chip pixel (u, v) -> image: corner0 + u/last * (corner1 - corner0) + v/last * (corner2 - corner0)
    to_image = np.column_stack([(corners[1] - corners[0]) / last, (corners[2] - corners[0]) / last, corners[0]])
    # Float sampling, then truncation to uint8 as dlib's bilinear interpolation does.
    chip = cv2.warpAffine(image.astype(np.float32), to_image, (size, size),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return chip.astype(frame.dtype)
