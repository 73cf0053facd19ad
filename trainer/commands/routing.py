"""face-train routing RUN --clean B --robust B --distortion B: measure distortion-aware routing with int8 bundles."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import RunError
from ..run import read_run


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``routing``: clean vs robust vs routed recognisers on a recognition RUN's held-out pairs."""
    parser = subparsers.add_parser(
        "routing", help="compare clean, robust and distortion-routed recognisers (int8 bundles) on held-out pairs")
    parser.add_argument("run", help="recognition RUN folder (its held-out people and data root are used)")
    parser.add_argument("--clean", required=True, type=Path, help="embedding bundle trained on clean faces")
    parser.add_argument("--robust", required=True, type=Path, help="embedding bundle fine-tuned on distorted faces")
    parser.add_argument("--distortion", required=True, type=Path, help="distortion classifier bundle")
    parser.add_argument("--min-gain", type=float, default=0.005,
                        help="keep routing only if its mean accuracy beats both recognisers by this much")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write RUN/eval/routing.json and routing.md; print the table and the verdict."""
    from ..bundle_eval import bundle_outputs
    from ..evaluate.routing import clean_mask, evaluate_routing
    from edge.bundle import load_bundle

    from ..tasks.recognition import DATA_ROOT, MANIFEST_TASK, eval_sets, int8_vectors, load_table

    run_ = read_run(args.run, need_model=False)
    if run_.info.get("task") != MANIFEST_TASK:
        raise RunError(f"{args.run} is a {run_.info.get('task')} run; routing needs a recognition run")
    data_root = Path(run_.info.get("data", {}).get("root") or DATA_ROOT)
    labels = next(o.labels for o in load_bundle(args.distortion).manifest.outputs if o.kind == "softmax")
    sets = eval_sets(load_table("celeba_wild", data_root), run_.info["data"]["holdout_people"], run_.eval_dir,
                     data_root=data_root)
    result = evaluate_routing(
        sets.wild.crops, sets.pairs_left, sets.pairs_right, sets.same, sets.folds,
        clean=lambda c: int8_vectors(args.clean, c)[0], robust=lambda c: int8_vectors(args.robust, c)[0],
        is_clean=lambda c: clean_mask(next(iter(bundle_outputs(args.distortion, c).values())), labels),
        min_gain=args.min_gain)
    data = {"clean": str(args.clean), "robust": str(args.robust), "distortion": str(args.distortion),
            "pairs": int(len(sets.same)), **result.to_dict()}
    (run_.eval_dir / "routing.json").write_text(json.dumps(data, indent=1))
    text = (f"Held-out celeba_wild pairs ({len(sets.same)}), 10-fold accuracy, int8 bundles through edge.models:"
            f" clean {args.clean}, robust {args.robust}, distortion classifier {args.distortion}.\n\n"
            + result.markdown())
    (run_.eval_dir / "routing.md").write_text(text)
    print(text)
    return 0
