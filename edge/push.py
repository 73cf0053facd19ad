"""Push model bundles from the desktop to the Pi and install them there without downtime.

Desktop side (:func:`push_bundles`, :func:`push_rollback`): check the bundle locally, rsync
it over ssh into a staging folder on the Pi, then run ``face-edge install-bundle`` there.

Device side (:func:`install_bundle`, :func:`rollback`): verify sha256 and signature, run the
new model on the golden faces shipped in the bundle and compare with the outputs recorded
at conversion, then switch atomically and hot-reload the running service::

    models/<name>                  -> symlink to .versions/<name>/<version>
    models/.versions/<name>/<ver>/ the installed versions (current and previous are kept)
    models/.versions/<name>/previous -> symlink to the version rollback returns to

The symlink is swapped with ``os.replace`` of a temporary symlink, so a reader sees the old
or the new folder, never a mix. The running service is asked to reload over its control
socket (``service.control_socket``); if it does not report healthy (reload without errors,
the new version loaded, its golden faces reproduced, frames flowing) within the timeout,
the previous version is switched back and reloaded automatically.

golden.npz (written by the converter, listed with its sha256 in the manifest): ``faces``,
uint8 N x H x W x 3 RGB crops at the model's input size, and one float32 array per output
name (N x k) holding the dequantized outputs recorded at conversion.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import numpy as np

from .bundle import GOLDEN, MANIFEST, Bundle, load_bundle, load_public_key, read_manifest, sha256_file
from .distance import EUCLIDEAN, check_distance
from .errors import BundleError, FaceEdgeError

VERSIONS = ".versions"
PREVIOUS = "previous"
DEFAULT_STAGING = "/var/lib/face-edge/staging"
# The golden rule (compare_golden). A model's int8 outputs differ between kernel paths: XNNPACK on
# x86 or on ARM (NEON with or without dot product), or TFLite's built-in kernels when XNNPACK is not
# used. Each path rounds its intermediate requantizations its own way, and across some 60 layers
# that adds up: on the shipped bundles the built-in kernels differ from XNNPACK by up to 29 output
# quantization steps on one demo face (0.11 of a sigmoid's 0..1) and by 1.5-5 steps on average.
# So a value may differ by ``max_steps`` steps of its output's quantization (a manifest may measure
# and set its own per output under ``golden: {max_steps: {output: n}}``, twice the largest spread
# measured; the defaults below are about twice that of the shipped bundles), and every decision the
# device shows must hold where noise cannot flip it: a label on or off at its manifest threshold,
# the top class, the age group, unless the recorded value lies within half the allowance of the
# threshold (or the top-two margin within the allowance). Embeddings: cosine >= ``min_cosine``.
# Smaller changes than the runtimes' own spread cannot be told from it; sha256 and the signature
# are what keep a model's bytes from being changed.
GOLDEN_ATOL = 0.02
GOLDEN_MIN_COSINE = 0.96
GOLDEN_MAX_STEPS = {"sigmoid": 64, "softmax": 64, "regression": 24}
SPACE_RESERVE = 64 * 1024  # bytes kept free beyond the bundle's size (directory blocks, the symlinks)


class PushError(FaceEdgeError):
    """Copying a bundle to the Pi or talking to it over ssh failed."""

    exit_code = 3


class InstallError(FaceEdgeError):
    """A bundle could not be installed on the device (space, health check, nothing to roll back)."""

    exit_code = 4


# --- golden faces ---------------------------------------------------------------------------------
@dataclass
class GoldenReport:
    """How closely a model reproduced the outputs recorded at conversion."""

    ok: bool
    max_error: float
    faces: int
    detail: str


GOLDEN_MAX_POINT_PX = 1.0   # a shape predictor's golden points: whole pixels, one of rounding allowed
GOLDEN_MISSING = GoldenReport(ok=True, max_error=0.0, faces=0, detail="no golden.npz")


def golden_error(spec: Any, y: np.ndarray, want: np.ndarray, scale: float, atol: float = GOLDEN_ATOL,
                 min_cos: float = GOLDEN_MIN_COSINE, max_steps: Optional[float] = None) -> tuple[float, float]:
    """Return (error, allowed error) of dequantized output ``y`` against the recorded ``want``.

    Embeddings: 1 - cosine, allowed 1 - ``min_cos``; a euclidean model's vectors (edge.distance) by their
    distance relative to the recorded vector's length, allowed sqrt(2 (1 - ``min_cos``)) (the same bound on unit
    vectors, and a vector of the right direction but another length fails it). Scores and regressions: max absolute
    difference, allowed ``max_steps`` output quantization steps (``scale`` each; default by kind,
    GOLDEN_MAX_STEPS) or ``atol`` (relative to the value for regressions), whichever is larger.
    """
    if spec.kind == "embedding" and check_distance(spec.unit) == EUCLIDEAN:
        length = float(np.linalg.norm(want)) or 1.0
        return float(np.linalg.norm(y - want)) / length, float(np.sqrt(2.0 * (1.0 - min_cos)))
    if spec.kind == "embedding":
        denom = float(np.linalg.norm(y) * np.linalg.norm(want)) or 1.0
        return 1.0 - float(np.dot(y, want)) / denom, 1.0 - min_cos
    steps = GOLDEN_MAX_STEPS.get(spec.kind, GOLDEN_MAX_STEPS["regression"]) if max_steps is None else max_steps
    err = float(np.max(np.abs(y - want)))
    return err, max(atol * (max(1.0, float(np.max(np.abs(want)))) if spec.kind == "regression" else 1.0),
                    steps * scale)


def decision_changes(spec: Any, y: np.ndarray, want: np.ndarray, band: float) -> list[str]:
    """Return the decisions ``y`` changes against the recorded ``want`` where the recorded value is
    farther than ``band`` from the boundary: labels on/off at the manifest thresholds (sigmoid), the
    top class (softmax, unless the recorded top-two margin is within 2 x ``band``), the group of a
    regression with ``groups`` (e.g. age 20-29). Empty when every such decision holds."""
    changes: list[str] = []
    if spec.kind == "sigmoid":
        labels = list(spec.labels) or [spec.name] * y.size
        for k in range(min(y.size, want.size)):
            label = labels[k] if k < len(labels) else str(k)
            thr = spec.threshold(label)
            if (y[k] >= thr) != (want[k] >= thr) and abs(float(want[k]) - thr) > band:
                changes.append(f"{label} {'on' if y[k] >= thr else 'off'} at {thr:g} "
                               f"(recorded {want[k]:.3f}, now {y[k]:.3f})")
    elif spec.kind == "softmax" and want.size > 1:
        top_want, top_y = int(np.argmax(want)), int(np.argmax(y))
        margin = float(np.sort(want)[-1] - np.sort(want)[-2])
        if top_y != top_want and margin > 2 * band:
            names = list(spec.labels) + [str(i) for i in range(len(spec.labels), want.size)]
            changes.append(f"top class {names[top_y]} instead of {names[top_want]} (recorded margin {margin:.3f})")
    elif spec.kind == "regression" and spec.groups and y.size == 1:
        bounds = sorted({float(g[k]) for g in spec.groups for k in ("min", "max") if g.get(k) is not None})

        def group(v: float) -> int:
            return sum(v >= b for b in bounds)

        if group(float(y[0])) != group(float(want[0])) and min(abs(float(want[0]) - b) for b in bounds) > band:
            changes.append(f"group changes ({float(want[0]):.1f} recorded, {float(y[0]):.1f} now)")
    return changes


def compare_golden(model: Any, max_faces: Optional[int] = None) -> GoldenReport:
    """Return how ``model`` (a FaceModel) reproduces its bundle's golden.npz; GOLDEN_MISSING if absent.

    Raises BundleError when golden.npz is malformed or not covered by the manifest's sha256 list.
    """
    bundle: Bundle = model.bundle
    path = bundle.path / GOLDEN
    if not path.is_file():
        return GOLDEN_MISSING
    if GOLDEN not in bundle.manifest.files:
        raise BundleError(f"bundle {bundle.name}: {GOLDEN} is not listed with a sha256 in {MANIFEST}")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise BundleError(f"bundle {bundle.name}: {GOLDEN} is not a readable npz ({exc})") from None
    faces = arrays.get("faces")
    if faces is None or faces.dtype != np.uint8 or faces.ndim not in (3, 4) or len(faces) == 0:
        raise BundleError(f"bundle {bundle.name}: {GOLDEN} needs 'faces', uint8 N x H x W x 3")
    n = len(faces) if max_faces is None else min(len(faces), max_faces)
    golden_cfg = bundle.manifest.extra.get("golden") or {}
    atol = float(golden_cfg.get("atol", GOLDEN_ATOL))
    min_cos = float(golden_cfg.get("min_cosine", GOLDEN_MIN_COSINE))
    steps_cfg = golden_cfg.get("max_steps") or {}
    if not isinstance(steps_cfg, dict):
        raise BundleError(f"bundle {bundle.name}: {MANIFEST} golden.max_steps must map output names to numbers")
    expected = []
    for spec in bundle.manifest.outputs:
        if spec.name not in arrays:
            raise BundleError(f"bundle {bundle.name}: {GOLDEN} has no array for output {spec.name!r}")
        expected.append(np.asarray(arrays[spec.name], np.float32).reshape(len(faces), -1))
    worst, worst_where, failures = 0.0, "", []
    out_scales = [model._out_quant.get(i, (0.0, 0))[0] or 0.0 for i in model._out_indices]
    for i in range(n):
        face = faces[i]
        crop = face[..., ::-1] if face.ndim == 3 and face.shape[2] == 3 else face  # golden is RGB
        got = model.raw_outputs(model.preprocess(np.ascontiguousarray(crop)))
        for spec, exp, y, scale in zip(bundle.manifest.outputs, expected, got, out_scales):
            want = exp[i]
            if y.shape != want.shape:
                raise BundleError(f"bundle {bundle.name}: output {spec.name} has {y.size} values, "
                                  f"{GOLDEN} recorded {want.size}")
            steps = steps_cfg.get(spec.name)
            err, limit = golden_error(spec, y, want, float(scale), atol, min_cos,
                                      None if steps is None else float(steps))
            unit = float(scale) if scale and spec.kind != "embedding" else 0.0
            if err > worst:
                worst, worst_where = err, f"{spec.name} on face {i}" + (f", {err / unit:.0f} steps" if unit else "")
            if err > limit:
                failures.append(f"{spec.name} on face {i}: error {err:.4f} > {limit:.4f}"
                                + (f" ({err / unit:.0f} > {limit / unit:.0f} steps)" if unit else ""))
            for change in decision_changes(spec, y, want, limit / 2):
                failures.append(f"{spec.name} on face {i}: {change}")
    detail = f"{n} faces, max error {worst:.4f}" + (f" ({worst_where})" if worst_where else "")
    if bundle.manifest.task == "landmarks":
        from .align import shape_predictor_of

        predictor = shape_predictor_of(model)
        errors = None if predictor is None else predictor.golden_errors(faces)
        if errors is not None:
            # Whole pixels, as dlib's: a float rounding at half a pixel may move a point by one.
            far = [i for i, e in enumerate(errors[:n]) if e > GOLDEN_MAX_POINT_PX]
            failures += [f"shape predictor on face {i}: {errors[i]:g} px from its recorded points" for i in far]
            detail += f"; shape predictor {min(n, len(errors))} faces, at most {errors[:n].max():g} px"
    if failures:
        return GoldenReport(False, worst, n, "; ".join(failures[:3]))
    return GoldenReport(True, worst, n, detail)


# --- the device's model store ---------------------------------------------------------------------
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")


def _safe(value: str, what: str) -> str:
    if not _SAFE.match(value):
        raise BundleError(f"{what} {value!r} may only use letters, digits and . _ + - (max 128)")
    return value


class ModelStore:
    """The versioned models folder on the device (layout in the module docstring)."""

    def __init__(self, models_dir: str | os.PathLike[str]):
        self.root = Path(models_dir)
        self.versions = self.root / VERSIONS

    def link(self, name: str) -> Path:
        """Return models/<name>: the path the pipeline loads."""
        return self.root / name

    def current(self, name: str) -> Optional[Path]:
        """Return the folder models/<name> points to now (a plain folder for a shipped bundle), or None."""
        link = self.link(name)
        if link.is_symlink():
            target = link.resolve()
            return target if target.is_dir() else None
        return link if link.is_dir() else None

    def previous(self, name: str) -> Optional[Path]:
        """Return the version folder a rollback of ``name`` returns to, or None."""
        prev = self.versions / name / PREVIOUS
        if prev.is_symlink() and prev.resolve().is_dir():
            return prev.resolve()
        return None

    def version_dir(self, name: str, version: str) -> Path:
        """Return where version ``version`` of ``name`` lives."""
        return self.versions / _safe(name, "bundle name") / _safe(version, "bundle version")

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold an exclusive lock on the store, so two installs never interleave."""
        self.versions.mkdir(parents=True, exist_ok=True)
        with open(self.versions / ".lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def adopt(self, name: str) -> Optional[Path]:
        """Move a plain models/<name> folder into .versions and link it; return its version folder."""
        link = self.link(name)
        if link.is_symlink() or not link.is_dir():
            return self.current(name)
        version = read_manifest(link).version
        dest = self.version_dir(name, version)
        if dest.exists():
            dest = self.version_dir(name, f"{version}+shipped")
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.rename(link, dest)
        self._point(link, dest)
        return dest

    def switch(self, name: str, target: Path) -> None:
        """Atomically point models/<name> at the version folder ``target``."""
        self._point(self.link(name), target)

    def set_previous(self, name: str, target: Optional[Path]) -> None:
        """Record ``target`` as the version a rollback of ``name`` returns to (None clears it)."""
        prev = self.versions / name / PREVIOUS
        if target is None:
            with contextlib.suppress(FileNotFoundError):
                prev.unlink()
            return
        self._point(prev, target)

    def prune(self, name: str) -> list[str]:
        """Delete versions of ``name`` that are neither current nor previous; return their names."""
        keep = {p for p in (self.current(name), self.previous(name)) if p is not None}
        removed = []
        folder = self.versions / name
        if not folder.is_dir():
            return removed
        for child in folder.iterdir():
            if child.is_symlink() or not child.is_dir():
                continue
            if child.resolve() not in keep and (not child.name.startswith(".incoming-")
                                                or _stale(child)):
                shutil.rmtree(child, ignore_errors=True)
                removed.append(child.name)
        return removed

    @staticmethod
    def _point(link: Path, target: Path) -> None:
        rel = os.path.relpath(target, link.parent)
        tmp = link.parent / f".{link.name}.tmp-{os.getpid()}"
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.symlink(rel, tmp)
        os.replace(tmp, link)
        _fsync_dir(link.parent)


def _stale(path: Path, age_s: float = 3600.0) -> bool:
    try:
        return time.time() - path.stat().st_mtime > age_s
    except OSError:
        return True


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _tree_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _same_files(a: Path, b: Path) -> bool:
    ma, mb = read_manifest(a), read_manifest(b)
    return dict(ma.files) == dict(mb.files) and sha256_file(a / MANIFEST) == sha256_file(b / MANIFEST)


# --- talking to the running service ---------------------------------------------------------------
@dataclass
class Health:
    """What the running service said after a reload."""

    ok: bool
    running: bool
    message: str
    answer: dict[str, Any] = field(default_factory=dict)


def reload_service(settings: Any, name: str, version: Optional[str], timeout: float) -> Health:
    """Ask the running service to hot-reload ``name`` and wait until it reports healthy.

    Healthy: the reload raised no errors, the pipeline runs ``version`` of ``name`` (when the
    config runs that bundle), its golden faces are reproduced, and frames keep flowing.
    """
    from .control import ControlClient

    path = settings.service.control_socket
    if not path:
        return Health(True, False, "no service.control_socket configured: the service picks the "
                      "new model up at its next start (systemctl restart face-edge)")
    if not Path(path).exists():
        return Health(True, False, f"no service is listening on {path}: the new model is used at the next start")
    client = ControlClient(path)
    started = time.monotonic()
    try:
        answer = client.reload([name], timeout)
    except ConnectionRefusedError:
        return Health(True, False, f"no service is listening on {path} (stale socket): "
                      "the new model is used at the next start")
    except (OSError, ValueError) as exc:
        return Health(False, True, f"the service did not answer the reload on {path} within {timeout:g} s ({exc})")
    if not answer.get("ok"):
        errors = "; ".join(answer.get("errors") or ["unknown error"])
        return Health(False, True, f"reload failed: {errors}", answer)
    runs_it = name in list(settings.models.bundles)
    loaded = (answer.get("models") or {}).get(name)
    if runs_it and version is not None and loaded != version:
        return Health(False, True, f"after the reload the service runs {name} {loaded!r}, not {version!r}", answer)
    left = max(1.0, timeout - (time.monotonic() - started))
    st = client.wait_frames(int(answer.get("frame", -1)), 3, left)
    if st is None:
        return Health(False, True, f"the frame loop did not advance within {left:.0f} s after the reload", answer)
    golden = (answer.get("golden") or {}).get(name) or {}
    what = f"runs {name} {loaded}" if runs_it else f"reloaded ({name} is not in models.bundles, so it is not run)"
    extra = f", golden {golden['detail']}" if golden.get("detail") else ""
    return Health(True, True, f"service {what}, frame {st.get('frame')}{extra}", answer)


# --- device side: install and rollback ------------------------------------------------------------
@dataclass
class InstallResult:
    """The outcome of install_bundle or rollback."""

    name: str
    version: str
    previous: Optional[str]
    golden: str
    service: str


def _model_for(bundle: Bundle, settings: Any) -> Any:
    from .models import FaceModel
    from .runtime import get_runtime

    return FaceModel(bundle, get_runtime(settings.models.runtime), settings.models.num_threads)


def _public_key(settings: Any) -> Any:
    key = settings.models.public_key
    return load_public_key(key) if key else None


def _copy_into(staged: Path, tmp: Path, models_root: Path) -> None:
    """Move ``staged`` to ``tmp`` (rename on the same filesystem, else copy); clean up on failure."""
    try:
        if staged.stat().st_dev == tmp.parent.stat().st_dev:
            os.rename(staged, tmp)
        else:
            _copy_files(staged, tmp)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            free = shutil.disk_usage(models_root).free
            raise InstallError(f"no space left on the device under {models_root} ({free // 1024} KiB or no inodes "
                               "free): remove old bundles or free space; nothing was changed") from None
        raise InstallError(f"cannot copy the bundle into {tmp.parent}: {exc.strerror or exc}") from None


def _copy_files(src: Path, dest: Path) -> None:
    """Copy the regular files under ``src`` to ``dest`` (symlinks are not followed); OSError on the first failure."""
    dest.mkdir()
    for path in sorted(src.rglob("*")):
        target = dest / path.relative_to(src)
        if path.is_symlink():
            continue
        if path.is_dir():
            target.mkdir()
        else:
            shutil.copyfile(path, target)
            with open(target, "rb+") as fh:
                os.fsync(fh.fileno())


def install_bundle(staged: str | os.PathLike[str], settings: Any, timeout: float = 60.0,
                   keep_staged: bool = False) -> InstallResult:
    """Verify, test on golden faces, switch atomically, reload the service; roll back when unhealthy.

    Returns an InstallResult; raises BundleError (refused bundle) or InstallError (no space,
    unhealthy after reload — already rolled back). The running model is untouched on any error.
    """
    staged = Path(staged)
    try:
        return _install(staged, settings, timeout)
    finally:
        if not keep_staged and staged.exists():
            shutil.rmtree(staged, ignore_errors=True)


def _install(staged: Path, settings: Any, timeout: float) -> InstallResult:
    key = _public_key(settings)
    bundle = load_bundle(staged, key)
    links = [p.name for p in staged.rglob("*") if p.is_symlink()]
    if links:
        raise BundleError(f"bundle {bundle.name}: contains symlinks ({', '.join(links[:3])}): refusing")
    name, version = _safe(bundle.name, "bundle name"), _safe(bundle.manifest.version, "bundle version")
    store = ModelStore(settings.models.dir)
    store.root.mkdir(parents=True, exist_ok=True)
    with store.locked():
        current = store.current(name)
        if current is not None:
            old = read_manifest(current)
            if old.task != bundle.manifest.task:
                raise BundleError(f"bundle {name} is a {bundle.manifest.task} model but the installed {name} "
                                  f"is a {old.task} model: refusing (give it another name)")
            if old.version == version:
                if _same_files(current, staged):
                    return InstallResult(name, version, None, "unchanged", "already installed and active")
                raise BundleError(f"bundle {name} version {version} is already installed with different files: "
                                  "give the new bundle a new version")
        dest = store.version_dir(name, version)
        if dest.exists() and not _same_files(dest, staged):
            raise BundleError(f"bundle {name} version {version} is already installed with different files: "
                              "give the new bundle a new version")
        need = _tree_size(staged)
        same_fs = staged.stat().st_dev == store.versions.stat().st_dev
        free = shutil.disk_usage(store.versions).free
        if not same_fs and not dest.exists() and free < need + SPACE_RESERVE:
            raise InstallError(f"no space left on the device under {store.root}: {name} {version} needs "
                               f"{need // 1024} KiB (+{SPACE_RESERVE // 1024} KiB reserve), {free // 1024} KiB free; "
                               "nothing was changed")
        dest.parent.mkdir(parents=True, exist_ok=True)
        created = not dest.exists()
        if created:
            tmp = dest.parent / f".incoming-{version}-{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            _copy_into(staged, tmp, store.root)
            try:
                installed = load_bundle(tmp, key)  # again: the copy may have been cut short
                report = compare_golden(_model_for(installed, settings))
            except FaceEdgeError:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            if not report.ok:
                shutil.rmtree(tmp, ignore_errors=True)
                raise BundleError(f"bundle {name} {version}: the model does not reproduce its golden outputs "
                                  f"on this device ({report.detail}): refusing")
            os.rename(tmp, dest)
            _fsync_dir(dest.parent)
        else:
            report = compare_golden(_model_for(load_bundle(dest, key), settings))
            if not report.ok:
                raise BundleError(f"bundle {name} {version}: golden check failed ({report.detail}): refusing")
        old_dir = store.adopt(name)
        old_previous = store.previous(name)
        store.switch(name, dest)
        store.set_previous(name, old_dir)
        health = reload_service(settings, name, version, timeout)
        if not health.ok:
            _restore(store, name, old_dir, old_previous)
            if created:
                shutil.rmtree(dest, ignore_errors=True)
            back = reload_service(settings, name, read_manifest(old_dir).version if old_dir else None, timeout) \
                if old_dir is not None else None
            again = f"; back on {name} {read_manifest(old_dir).version}" if old_dir else ""
            if back is not None and not back.ok:
                again += f" (the service also reports after the rollback: {back.message})"
            raise InstallError(f"{name} {version} was rolled back: {health.message}{again}")
        store.prune(name)
        return InstallResult(name, version, read_manifest(old_dir).version if old_dir else None,
                             report.detail, health.message)


def _restore(store: ModelStore, name: str, old_dir: Optional[Path], old_previous: Optional[Path]) -> None:
    if old_dir is not None:
        store.switch(name, old_dir)
    else:
        with contextlib.suppress(FileNotFoundError):
            store.link(name).unlink()
    store.set_previous(name, old_previous)


def rollback(name: str, settings: Any, timeout: float = 60.0) -> InstallResult:
    """Switch ``name`` back to its previous version and reload; the version rolled back from becomes previous."""
    store = ModelStore(settings.models.dir)
    _safe(name, "bundle name")
    with store.locked():
        current, previous = store.current(name), store.previous(name)
        if previous is None:
            raise InstallError(f"{name} has no previous version under {store.versions / name} to roll back to")
        bundle = load_bundle(previous, _public_key(settings))
        report = compare_golden(_model_for(bundle, settings))
        if not report.ok:
            raise InstallError(f"previous {name} {bundle.manifest.version} fails its golden check "
                               f"({report.detail}): not rolling back")
        store.switch(name, previous)
        store.set_previous(name, current)
        health = reload_service(settings, name, bundle.manifest.version, timeout)
        if not health.ok:
            _restore(store, name, current, previous)
            if current is not None:
                reload_service(settings, name, read_manifest(current).version, timeout)
            raise InstallError(f"rollback of {name} to {bundle.manifest.version} undone: {health.message}")
        return InstallResult(name, bundle.manifest.version,
                             read_manifest(current).version if current else None, report.detail, health.message)


# --- desktop side: ssh and rsync ------------------------------------------------------------------
@dataclass
class SshTarget:
    """Where and how to reach the Pi over ssh."""

    host: str
    port: Optional[int] = None
    identity: Optional[str] = None
    options: Sequence[str] = ()
    connect_timeout: int = 10

    def ssh_command(self) -> list[str]:
        """Return the ssh command line (without host and remote command)."""
        cmd = ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={self.connect_timeout}",
               "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3"]
        if self.port:
            cmd += ["-p", str(self.port)]
        if self.identity:
            cmd += ["-i", str(self.identity), "-o", "IdentitiesOnly=yes"]
        for opt in self.options:
            cmd += ["-o", opt]
        return cmd

    def run(self, remote: Sequence[str], timeout: Optional[float] = None) -> subprocess.CompletedProcess:
        """Run the argv ``remote`` on the Pi; return the completed process (output captured)."""
        try:
            return subprocess.run(self.ssh_command() + [self.host, "--", shlex.join(remote)],
                                  stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
        except FileNotFoundError:
            raise PushError("ssh is not installed on this computer (apt install openssh-client)") from None
        except subprocess.TimeoutExpired:
            raise PushError(f"{self.host}: no answer within {timeout:g} s") from None

    def where(self) -> str:
        """Return host[:port] for messages."""
        return f"{self.host}:{self.port}" if self.port else self.host


_SSH_PROBLEMS = (
    ("Permission denied", "the Pi refused the ssh key ({line}): add your public key to ~/.ssh/authorized_keys "
                          "on the Pi or pass --identity"),
    ("Host key verification failed", "the Pi's host key is unknown or changed ({line}): check it, then "
                                     "ssh to it once by hand to accept it"),
    ("Could not resolve hostname", "cannot resolve {host} ({line}): check the name or use the Pi's IP address"),
    ("Connection refused", "cannot reach {host} ({line}): is the Pi on and its ssh server running?"),
    ("timed out", "cannot reach {host} ({line}): is the Pi on the network?"),
    ("No route to host", "cannot reach {host} ({line}): is the Pi on the network?"),
    ("Network is unreachable", "cannot reach {host} ({line}): is this computer on the network?"),
    ("No space left on device", "the Pi has no space left for the bundle ({line}): free space on its "
                                "/var/lib/face-edge; nothing was installed"),
    ("command not found", "a command is missing on the Pi ({line}): run systemd/install.sh there "
                          "(or pass --remote-face-edge)"),
    ("closed by remote host", "the connection to {host} was cut ({line}): nothing was installed; push again"),
    ("connection unexpectedly closed", "the connection to {host} was cut during the copy ({line}): "
                                       "nothing was installed; push again"),
    ("Broken pipe", "the connection to {host} was cut during the copy ({line}): nothing was installed; push again"),
)


def explain_failure(target: SshTarget, stderr: str, what: str) -> str:
    """Return one actionable line for a failed ssh/rsync run from its stderr."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for needle, template in _SSH_PROBLEMS:
        for line in lines:
            if needle.lower() in line.lower():
                return f"{what}: " + template.format(host=target.where(), line=line)
    last = lines[-1] if lines else "no message"
    return f"{what} on {target.where()} failed: {last}"


def _remote_face_edge(spec: str) -> list[str]:
    return shlex.split(spec)


def remote_free_bytes(target: SshTarget, path: str) -> Optional[int]:
    """Return the bytes available to the ssh user under ``path`` on the Pi (df -Pk), or None if unknown."""
    done = target.run(["df", "-Pk", "--", path], timeout=target.connect_timeout + 20)
    if done.returncode != 0:
        return None
    try:
        return int(done.stdout.strip().splitlines()[-1].split()[3]) * 1024
    except (IndexError, ValueError):
        return None


def _no_space(name: str, staging: str, free: int, need: int) -> str:
    return (f"copying {name}: the Pi has no space left for the bundle under {staging} ({free // 1024} KiB free, "
            f"the bundle needs {need // 1024} KiB): free space on the Pi; nothing was installed")


def _remote_error(done: subprocess.CompletedProcess) -> str:
    """Return the device's one-line error (its last ``face-edge: error:`` line, else its last line)."""
    lines = [ln.strip() for ln in done.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("face-edge: error: ")]
    if errors:
        return errors[-1].removeprefix("face-edge: error: ")
    return lines[-1] if lines else f"exit {done.returncode}"


def push_bundles(target: SshTarget, bundles: Sequence[str | os.PathLike[str]], *,
                 remote_face_edge: str = "face-edge", remote_config: Optional[str] = None,
                 staging: str = DEFAULT_STAGING, timeout: float = 60.0, public_key: Optional[str] = None,
                 echo: Any = print) -> list[str]:
    """Copy each bundle to the Pi and install it there; return the device's one-line results.

    Stops at the first failure with a PushError (transfer) or the device's own message (install).
    """
    key = load_public_key(public_key) if public_key else None
    checked = [load_bundle(Path(b), key) for b in bundles]  # refuse a broken bundle before copying
    probe = target.run(["mkdir", "-p", "--", staging], timeout=target.connect_timeout + 20)
    if probe.returncode != 0:
        raise PushError(explain_failure(target, probe.stderr, "ssh"))
    results = []
    for bundle in checked:
        remote_dir = f"{staging.rstrip('/')}/{bundle.name}"
        need = _tree_size(bundle.path)
        free = remote_free_bytes(target, staging)
        if free is not None and free < need:
            raise PushError(_no_space(bundle.name, staging, free, need))
        echo(f"copying {bundle.name} {bundle.manifest.version} to {target.where()}:{remote_dir}")
        # -rltp, not -a: the Pi's files get group face-edge from the setgid staging folder and modes
        # the service can read, whatever the owner, group and umask were on the desktop.
        rsync = ["rsync", "-rltp", "--chmod=D770,F660", "--delete", "--timeout=30",
                 "-e", shlex.join(target.ssh_command()),
                 f"{bundle.path}/", f"{target.host}:{remote_dir}/"]
        try:
            copied = subprocess.run(rsync, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        except FileNotFoundError:
            raise PushError("rsync is not installed on this computer (apt install rsync)") from None
        if copied.returncode != 0:
            # rsync does not always relay the receiver's error (seen: exit 11 with no message on a
            # full disk): ask the Pi for its free space before the partial copy is removed.
            free = None
            with contextlib.suppress(FaceEdgeError):
                free = remote_free_bytes(target, staging)
            # A cut copy never reaches the models folder; remove what did arrive, if we still can.
            with contextlib.suppress(FaceEdgeError):
                target.run(["rm", "-rf", "--", remote_dir], timeout=target.connect_timeout + 20)
            if free is not None and free < 64 * 1024 and "No space left" not in copied.stderr:
                raise PushError(_no_space(bundle.name, staging, free, need))
            raise PushError(explain_failure(target, copied.stderr or f"rsync exit {copied.returncode}",
                                            f"copying {bundle.name}"))
        cmd = _remote_face_edge(remote_face_edge) + ["install-bundle", "--timeout", f"{timeout:g}"]
        if remote_config:
            cmd += ["--config", remote_config]
        installed = target.run(cmd + [remote_dir], timeout=timeout * 2 + 120)
        for line in installed.stdout.splitlines():
            echo(line)
        if installed.returncode == 127:
            command = " ".join(_remote_face_edge(remote_face_edge))
            with contextlib.suppress(FaceEdgeError):
                target.run(["rm", "-rf", "--", remote_dir], timeout=target.connect_timeout + 20)
            raise PushError(f"{target.where()}: {command!r} is not installed there ({_remote_error(installed)}): "
                            "run systemd/install.sh on the Pi or pass --remote-face-edge")
        if installed.returncode != 0:
            if installed.returncode == 255:
                raise PushError(explain_failure(target, installed.stderr, f"installing {bundle.name}"))
            message = _remote_error(installed)
            err = FaceEdgeError(f"{target.where()} refused {bundle.name}: {message}")
            err.exit_code = installed.returncode
            raise err
        results.extend(installed.stdout.splitlines())
    return results


def push_rollback(target: SshTarget, name: str, *, remote_face_edge: str = "face-edge",
                  remote_config: Optional[str] = None, timeout: float = 60.0, echo: Any = print) -> list[str]:
    """Roll ``name`` back to its previous version on the Pi; return the device's one-line results."""
    cmd = _remote_face_edge(remote_face_edge) + ["install-bundle", "--timeout", f"{timeout:g}", "--rollback", name]
    if remote_config:
        cmd += ["--config", remote_config]
    done = target.run(cmd, timeout=timeout * 2 + 120)
    for line in done.stdout.splitlines():
        echo(line)
    if done.returncode == 255:
        raise PushError(explain_failure(target, done.stderr, "ssh"))
    if done.returncode != 0:
        err = FaceEdgeError(f"{target.where()}: rollback of {name} failed: {_remote_error(done)}")
        err.exit_code = done.returncode
        raise err
    return done.stdout.splitlines()

