"""face-train views BUNDLE --data DIR: choose a multitask bundle's test-time views on validation (device code)."""
from __future__ import annotations

import argparse
import json

from edge.views import DEFAULT_MAX_CALLS


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``views``: pick, measure and write the test-time views of a converted multitask bundle."""
    parser = subparsers.add_parser("views", help="choose a multitask bundle's test-time views on validation")
    parser.add_argument("bundle", help="multitask bundle folder (rewritten atomically)")
    parser.add_argument("--data", required=True, help="the data it was trained on (utkface/ and fer2013/)")
    parser.add_argument("--version", default=None, help="new version for the manifest (default: keep)")
    parser.add_argument("--cache-dir", default=None, help="where face crops are cached (default /work/cache)")
    parser.add_argument("--threads", type=int, default=2, help="interpreter threads")
    parser.add_argument("--max-calls", type=int, default=DEFAULT_MAX_CALLS,
                        help=f"choose among the presets of at most this many model calls per face (default "
                             f"{DEFAULT_MAX_CALLS}: face + mirror); every preset is still measured and tabled")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Choose the views, rewrite the bundle, print the validation table and the new held-out figures."""
    from ..multitask.bundle_views import tune_bundle_views

    result = tune_bundle_views(args.bundle, args.data, args.version, args.cache_dir, args.threads,
                               max_calls=args.max_calls)
    print(json.dumps(result, indent=1, default=float))
    return 0
