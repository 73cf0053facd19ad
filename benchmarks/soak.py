"""Soak: 10,000 frames of a looped clip through the full edge loop with the shipped bundles; RSS at start
and end, frame-time percentiles and outliers, model looks per second.

    python benchmarks/soak.py [--frames 10000] [--clip PATH] [--tiny] [--no-models]

Plays the first clip of benchmarks/pipeline.py (../shared's Hamilton clip resized, else the demo
clip) unpaced, looped, headless, with the bundles benchmarks/pipeline.py runs (every bundle in
models/; ``--tiny``: the small random-weight ones), the model worker and the background search on,
and the events sink on (to a temporary file) so track start/end bookkeeping is exercised too.
RSS is read from /proc after a 300-frame warm-up and at the end; the floor is growth under
2 MB. Outliers are frames slower than 5x the median frame time.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import numpy as np  # noqa: E402

from pipeline import bench_bundles, bench_clip, current_rss_mb, describe_bundles, percentiles  # noqa: E402

WARMUP = 300
OUTLIER_FACTOR = 5.0
RSS_FLOOR_MB = 2.0


def main() -> int:
    """Run the soak and print RSS start/end, growth, frame-time percentiles, outliers and model looks."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--clip", help="a clip to loop instead")
    parser.add_argument("--tiny", action="store_true", help="tiny random-weight bundles instead of the shipped ones")
    parser.add_argument("--no-models", action="store_true", help="detection and tracking only")
    args = parser.parse_args()

    from edge.config import Settings
    from edge.pipeline import Pipeline
    from edge.sinks import EventSink

    clip = bench_clip(args.clip)
    settings = Settings()
    settings.source.uri = str(clip)
    settings.source.realtime = False
    settings.source.loop = True
    settings.display.window = False
    models, bundles = bench_bundles(args.tiny)
    settings.models.dir = str(models)
    settings.models.bundles = [] if args.no_models else bundles
    with tempfile.TemporaryDirectory() as tmp:
        pipeline = Pipeline(settings, events=EventSink(Path(tmp) / "events.jsonl"))
        if pipeline.model_errors:
            raise SystemExit(f"bundles failed to load: {pipeline.model_errors}")
        pipeline.open()
        rss = {}
        try:
            while pipeline.frame_index < WARMUP:
                pipeline.step()
            rss["start"] = current_rss_mb()
            pipeline.times.reset()
            t0 = time.perf_counter()
            samples = []
            while pipeline.frame_index < WARMUP + args.frames:
                pipeline.step()
                if pipeline.frame_index % 1000 == 0:
                    samples.append((pipeline.frame_index - WARMUP, current_rss_mb()))
            seconds = time.perf_counter() - t0
            rss["end"] = current_rss_mb()
            events = pipeline.events.count
            loops = getattr(pipeline.source, "loops", 0)
            looks, stale = pipeline.times.looks, pipeline.times.stale
            searches = pipeline.search.background_searches
        finally:
            pipeline.close()
    frame_ms = np.asarray(pipeline.times.frame_s, np.float64) * 1000.0
    median = float(np.median(frame_ms))
    outliers = np.flatnonzero(frame_ms > OUTLIER_FACTOR * median)
    growth = rss["end"] - rss["start"]
    print(f"clip: {clip} (looped {loops} times) | bundles: "
          f"{describe_bundles(models, settings.models.bundles) if settings.models.bundles else 'none'} | "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"frames: {len(frame_ms)} in {seconds:.1f} s ({len(frame_ms) / seconds:.1f} frames/s), "
          f"{looks} looks at faces ({looks / seconds:.1f}/s, {stale} stale dropped), "
          f"{searches} background whole-frame searches, {events} events")
    print(f"RSS: {rss['start']:.1f} MB after {WARMUP} warm-up frames, {rss['end']:.1f} MB at the end: "
          f"growth {growth:+.2f} MB ({'met' if growth < RSS_FLOOR_MB else 'MISS'}: floor < {RSS_FLOOR_MB:g} MB)")
    print("RSS every 1000 frames: " + ", ".join(f"{n}: {mb:.1f}" for n, mb in samples))
    p999 = np.percentile(frame_ms, 99.9)
    print(f"frame time p50 / p99 / max: {percentiles(frame_ms)}, p99.9 {p999:.2f} ms")
    print(f"outliers (> {OUTLIER_FACTOR:g}x median = {OUTLIER_FACTOR * median:.1f} ms): {len(outliers)}"
          + (": " + ", ".join(f"#{i} {frame_ms[i]:.0f} ms" for i in outliers[np.argsort(-frame_ms[outliers])][:8])
             if len(outliers) else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
