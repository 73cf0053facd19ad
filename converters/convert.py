"""convert_run: a training RUN folder in, a verified (optionally signed) model bundle out."""
from __future__ import annotations

import datetime as _dt
import logging
import os
import shlex
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from edge.bundle import CARD, MODEL_FILE, Bundle, Manifest, OutputSpec, load_bundle
from edge.errors import FaceEdgeError
from edge.models import FaceModel
from edge.runtime import get_runtime

from .bundle_writer import PARITY_FILE, check_output_folder, publish, staging_folder, write_json, write_manifest
from .errors import ConvertError
from .golden import write_demo_golden
from .model_card import render_model_card
from .parity import enforce_floor, latency_ms, parity_report, tflite_outputs
from .quantize import MODES, QuantConfig, convert_keras, io_details, representative_set, signature_outputs
from .run import RUN_ONLY_KEYS, Run, keras_output_names, keras_predict, load_keras_model, load_run
from .signing import load_private_key, sign_manifest

FIGURES_DIR = "figures"  # int8 evaluation plots inside a bundle (copy_int8_figures)
log = logging.getLogger("face_convert")
DEFAULT_FLOOR = 0.97


def _display_path(path: Path) -> str:
    try:
        return os.path.relpath(path.resolve(), Path.cwd())
    except ValueError:
        return str(path)


def _resolved_outputs(manifest: Manifest, flat: bytes) -> tuple[OutputSpec, ...]:
    """Return the manifest outputs with ``tensor`` = signature name and ``index`` = its tensor index."""
    sig = signature_outputs(flat)
    outs = []
    for out in manifest.outputs:
        if out.name in sig:
            outs.append(replace(out, tensor=out.name, index=int(sig[out.name])))
        elif len(manifest.outputs) == 1 and len(sig) == 1:
            name, index = next(iter(sig.items()))
            outs.append(replace(out, tensor=name, index=int(index)))
        else:
            raise ConvertError(f"converted model has no output tensor named {out.name!r} "
                               f"(signature outputs: {', '.join(sorted(sig)) or 'none'})")
    return tuple(outs)


def staged_model(folder: Path, base: Manifest, flat: bytes, threads: int) -> FaceModel:
    """Write ``flat`` as folder/model.tflite and return a FaceModel on it with a matching manifest."""
    (folder / MODEL_FILE).write_bytes(flat)
    details = io_details(flat)
    manifest = replace(base, outputs=_resolved_outputs(base, flat),
                       input=replace(base.input, dtype=details["input"]["dtype"]))
    return FaceModel(Bundle(path=folder, manifest=manifest), get_runtime("ai_edge_litert"), num_threads=threads)


def _check_heads(run: Run, model: Any) -> None:
    names = keras_output_names(model)
    missing = [o.name for o in run.manifest.outputs if o.name not in names]
    if missing and not (len(run.manifest.outputs) == 1 and len(names) == 1):
        raise ConvertError(f"run {run.path}: run.yaml output(s) {', '.join(missing)} are not outputs of model.keras "
                           f"(its outputs: {', '.join(names)}); name the Keras output layers after the heads")


def _without_final_l2(tensor: Any) -> Optional[Any]:
    """Return ``tensor`` as computed before its final UnitNormalization (looking inside nested
    single-output Functional models), or None when it does not end in one."""
    import keras

    layer, node_index, _ = tensor._keras_history
    inputs = layer._inbound_nodes[node_index].input_tensors
    if isinstance(layer, keras.layers.UnitNormalization):
        return inputs[0]
    if isinstance(layer, keras.Model) and len(inputs) == 1:
        inner = layer.output
        if isinstance(inner, dict):
            inner = next(iter(inner.values())) if len(inner) == 1 else None
        elif isinstance(inner, (list, tuple)):
            inner = inner[0] if len(inner) == 1 else None
        pre = _without_final_l2(inner) if inner is not None else None
        if pre is not None:
            return keras.Model(layer.inputs, pre, name=f"{layer.name}_before_l2")(inputs[0])
    return None


def strip_unit_normalization(model: Any, manifest: Manifest) -> tuple[Any, list[str]]:
    """Return the model to convert, with a final UnitNormalization removed from embedding outputs.

    TFLite has no int8 kernel for the SQUARE/RSQRT chain Keras lowers UnitNormalization to,
    and edge L2-normalises the vectors of every cosine embedding output anyway (edge.models.interpret_output).
    The converted output keeps the head's name. Returns (model, notes for the manifest).
    """
    import keras

    outputs = model.output
    if not isinstance(outputs, dict):
        return model, []
    kinds = {o.name: o.kind for o in manifest.outputs}
    new_outputs, notes = dict(outputs), []
    for name, tensor in outputs.items():
        pre = _without_final_l2(tensor) if kinds.get(name) == "embedding" else None
        if pre is not None:
            new_outputs[name] = pre
            notes.append(f"{name}: final UnitNormalization left to edge (it L2-normalises embedding outputs)")
    if not notes:
        return model, []
    return keras.Model(model.inputs, new_outputs, name=model.name), notes


def _runtime_check(model: FaceModel, check_pythons: Sequence[str | Path] = ()) -> dict[str, str]:
    """Return {runtime: 'ok' | reason}: the golden faces replayed by edge.push in each installed runtime,
    and by tflite_runtime in each interpreter of ``check_pythons`` (see converters.foreign_runtime)."""
    from edge.push import compare_golden

    from .foreign_runtime import check_with_python

    results = {}
    for python in check_pythons:
        label, verdict = check_with_python(model, python)
        if verdict == "ok" or "tflite_runtime" not in results:
            results["tflite_runtime"] = verdict
        log.info("%s in %s: %s", label, python, verdict)
    for name in ("ai_edge_litert", "tflite_runtime"):
        if name in results:
            continue
        try:
            runtime = get_runtime(name)
        except FaceEdgeError:
            results[name] = "not installed"
            continue
        try:
            report = compare_golden(FaceModel(model.bundle, runtime, num_threads=1))
            results[name] = "ok" if report.ok else f"golden outputs differ: {report.detail}"
        except Exception as exc:
            results[name] = f"fails: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    return results


def measure_mode(model: Any, base: Manifest, cfg: QuantConfig, rep: Optional[np.ndarray], heldout: np.ndarray,
                 float_outs: dict[str, np.ndarray], labels: dict[str, np.ndarray], threads: int,
                 repeats: int) -> dict[str, Any]:
    """Return size, per-face latency (FaceModel.predict, ``threads``) and lowest head agreement of one mode."""
    flat = convert_keras(model, cfg, rep)
    with tempfile.TemporaryDirectory(prefix="face-convert-mode-") as scratch:
        fm = staged_model(Path(scratch), base, flat, threads)
        report = parity_report(fm.manifest, float_outs, tflite_outputs(fm, heldout), labels)
        return {"bytes": len(flat), "latency_ms": latency_ms(fm, heldout, repeats=repeats),
                "min_agreement": report["min_agreement"], "worst_head": report["worst_head"]}


def convert_run(run_dir: str | Path, out_dir: str | Path, quant: str = "int8", io_type: str = "uint8",
                per_channel: bool = True, rep_size: int = 300, seed: int = 0, floor: float = DEFAULT_FLOOR,
                force: bool = False, sign_key: Optional[str | Path] = None, compare_modes: bool = True,
                golden_faces: int = 4, threads: int = 1, latency_repeats: int = 60,
                check_pythons: Sequence[str | Path] = (), landmarks: Optional[str | Path] = None) -> Path:
    """Convert the run in ``run_dir`` and write its bundle to ``out_dir``; return the bundle path.

    The converted model is checked against the float Keras model on the run's held-out
    faces; an int8 model whose agreement on any head is below ``floor`` is refused unless
    ``force``. With ``compare_modes`` every other mode is converted too, for the size and
    latency table of the parity report. ``sign_key`` (an Ed25519 private PEM) adds manifest.sig.
    ``check_pythons``: interpreters holding tflite_runtime (which cannot share this one's numpy 2)
    that replay the golden faces too. ``landmarks``: the landmarks bundle that aligns the golden
    faces of an aligned-crop model (default: ``landmarks`` beside ``out_dir``).
    """
    cfg = QuantConfig(mode=quant, io_type=io_type, per_channel=per_channel, rep_size=rep_size, seed=seed)
    run = load_run(run_dir)
    out_dir = Path(out_dir)
    check_output_folder(out_dir)
    private_key = load_private_key(sign_key) if sign_key is not None else None
    heldout = run.heldout_faces()
    if heldout is None or len(heldout) == 0:
        raise ConvertError(f"run {run.path}: samples/heldout_faces.npy is missing or empty; parity cannot be checked")
    rep = None
    if cfg.mode == "int8":
        rep = representative_set(run.train_faces(), cfg.rep_size, cfg.seed)
    elif compare_modes:
        try:
            rep = representative_set(run.train_faces(), cfg.rep_size, cfg.seed)
        except ConvertError as exc:
            log.warning("int8 left out of the mode comparison: %s", exc)
    labels = run.heldout_labels()

    log.info("loading %s", run.keras_path)
    model = load_keras_model(run)
    _check_heads(run, model)
    float_outs = keras_predict(model, heldout)
    model, stripped = strip_unit_normalization(model, run.manifest)
    log.info("converting to %s", cfg.mode)
    flat = convert_keras(model, cfg, rep)

    with staging_folder(out_dir) as tmp:
        fm = staged_model(tmp, run.manifest, flat, threads)
        report = parity_report(fm.manifest, float_outs, tflite_outputs(fm, heldout), labels)
        floor_met = all(h["agreement"] >= floor for h in report["heads"].values())
        if cfg.mode == "int8" and not force:
            enforce_floor(report, floor, cfg.mode)
        modes = {cfg.mode: {"bytes": len(flat), "latency_ms": latency_ms(fm, heldout, repeats=latency_repeats),
                            "min_agreement": report["min_agreement"], "worst_head": report["worst_head"]}}
        if compare_modes:
            for mode in MODES:
                if mode == cfg.mode or (mode == "int8" and rep is None):
                    continue
                log.info("converting to %s for the mode comparison", mode)
                modes[mode] = measure_mode(model, run.manifest, replace(cfg, mode=mode), rep, heldout, float_outs,
                                           labels, threads, latency_repeats)
        modes = {m: modes[m] for m in MODES if m in modes}

        # Golden faces ship with the bundle: public-domain demo crops, never the (research-only) held-out faces.
        golden = write_demo_golden(tmp, fm, golden_faces, landmarks or out_dir.parent / "landmarks")
        details = io_details(flat)
        now = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
        int8_only = ("io_type", "per_channel", "rep_size", "seed")
        quantization = {**{k: v for k, v in cfg.to_dict().items() if cfg.mode == "int8" or k not in int8_only},
                        "rep_faces": 0 if rep is None or cfg.mode != "int8" else int(len(rep)),
                        "input_scale": details["input"]["scale"], "input_zero_point": details["input"]["zero_point"],
                        "tflite_bytes": len(flat), "converted": now, "tensorflow": _tf_version()}
        if stripped:
            quantization["graph_changes"] = stripped
        parity = {"mode": cfg.mode, "floor": floor, "floor_met": floor_met, "forced": bool(force and not floor_met),
                  "heldout_faces": int(len(heldout)), "threads": threads, **report, "modes": modes}
        write_json(tmp, PARITY_FILE, parity)

        rebuild = f"face-convert {shlex.quote(_display_path(run.path))} --quant {cfg.mode} " \
                  f"--out {shlex.quote(_display_path(out_dir))}"
        if cfg.mode == "int8" and cfg.io_type != "uint8":
            rebuild += f" --io {cfg.io_type}"
        if cfg.mode == "int8" and (cfg.rep_size, cfg.seed) != (300, 0):
            rebuild += f" --rep-size {cfg.rep_size} --seed {cfg.seed}"
        if force and not floor_met:
            rebuild += " --force"  # the same bundle needs the same override (see the parity section)
        train_cmd = (run.raw.get("training") or {}).get("command") if isinstance(run.raw.get("training"), dict) else None
        rebuild_text = (f"{train_cmd}\n" if train_cmd else "") + rebuild
        card_extra = _card_extra(run)
        write_card = lambda: (tmp / CARD).write_text(  # noqa: E731
            render_model_card(fm.manifest, run.raw, parity, quantization, rebuild_text, card_extra), encoding="utf-8")
        write_card()

        extra = {k: v for k, v in run.manifest.extra.items() if k not in RUN_ONLY_KEYS}
        extra["quantization"] = quantization
        extra["parity"] = {"file": PARITY_FILE, "floor": floor, "floor_met": floor_met,
                           "min_agreement": report["min_agreement"], "worst_head": report["worst_head"],
                           "heads": {n: {k: h[k] for k in ("agreement", "max_abs_diff", "mean_abs_diff",
                                                           "metrics_float", "metrics_converted")}
                                     for n, h in report["heads"].items()},
                           "latency_ms": {m: round(r["latency_ms"], 3) for m, r in modes.items()},
                           "bytes": {m: r["bytes"] for m, r in modes.items()}}
        extra["golden"] = golden
        extra["source"] = {"run": _display_path(run.path), "rebuild": rebuild}
        if cfg.mode == "int8":
            copy_int8_figures(run, tmp)
        # Files are hashed before the runtime check so edge.push sees the bundle as it will ship.
        manifest = write_manifest(tmp, replace(fm.manifest, extra=extra))
        runtimes = _runtime_check(FaceModel(Bundle(tmp, manifest), get_runtime("ai_edge_litert")), check_pythons)
        parity["runtimes"] = runtimes
        write_json(tmp, PARITY_FILE, parity)
        write_card()
        manifest = replace(manifest, runtimes_checked=tuple(r for r, v in runtimes.items() if v == "ok"),
                           extra={**extra, "runtimes": runtimes})
        write_manifest(tmp, manifest)
        if private_key is not None:
            sign_manifest(tmp, private_key)
        _self_check(tmp, private_key)
        return publish(tmp, out_dir)


def copy_int8_figures(run: Run, bundle_dir: Path) -> None:
    """Copy the run's int8 evaluation plots (RUN/eval/*_int8.png) into BUNDLE/figures.

    They are the figures the model card quotes, measured on an int8 bundle of the same run, so
    they travel with the bundle (and are hashed in its manifest) instead of being added by hand.
    """
    for png in sorted((run.path / "eval").glob("*_int8.png")):
        target = bundle_dir / FIGURES_DIR / png.name
        target.parent.mkdir(exist_ok=True)
        target.write_bytes(png.read_bytes())


def _card_extra(run: Run) -> str:
    """Return extra model-card markdown from run.yaml ``card`` and RUN/eval/card.md (either may be absent)."""
    parts = []
    if isinstance(run.raw.get("card"), str):
        parts.append(run.raw["card"])
    path = run.path / "eval" / "card.md"
    if path.is_file():
        parts.append(path.read_text(encoding="utf-8"))
    return "\n\n".join(parts)


def _self_check(folder: Path, private_key: Any) -> None:
    """Load the staged bundle as edge does (hashes, signature, golden replay); ConvertError if it fails."""
    from edge.push import compare_golden

    public = private_key.public_key() if private_key is not None else None
    model = FaceModel(load_bundle(folder, public), get_runtime("ai_edge_litert"), num_threads=1)
    report = compare_golden(model)
    if not report.ok:
        raise ConvertError(f"the written bundle does not reproduce its golden outputs in ai_edge_litert ({report.detail})")


def _tf_version() -> str:
    import tensorflow as tf

    return str(tf.__version__)
