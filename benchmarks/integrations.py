"""What MQTT and the web page cost the frame loop, and the memory the page takes.

    python benchmarks/integrations.py [--frames 600] [--rounds 3] [--tiny]

The loop plays the shipped demo clip unpaced, headless, with the shipped bundles in models/ (or the
tiny test bundles with ``--tiny``) and a gallery of the clip's astronaut enrolled from three of its
frames, so every pass of the clip makes appear / recognized / leave events. Configurations, run in
turn ``--rounds`` times (A B C D A B C D ...) so that a change in the machine's load hits all alike:

- A  plain: no integration;
- B  MQTT on (a real mosquitto on 127.0.0.1, a subscriber reading everything) and the web page open:
     one client reading the MJPEG live view (capped at web.live_fps) and polling /api/status and
     /api/events every 2 s, as the page's live view does;
- C  as B with the broker killed (connection refused; events queue, then the oldest are dropped);
- D  as B with the broker paused (SIGSTOP: the TCP connection stays open, nothing is read).

Printed: frames/s (median over the rounds) and its ratio to A, CPU ms per frame, live frames sent,
MQTT sent/queued/dropped; resident memory before the web page, with the page open, and after the
first POST /api/recognize (answered on the loop's own models, on its model worker). The floor of issue 20 is
B, C and D within 5 % of A. The page's client is another process on this machine (a real browser would
run on another one). The load average is printed with the figures.
"""
from __future__ import annotations

import argparse
import copy
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from edge.config import Settings  # noqa: E402
from edge.outputs import attach_outputs  # noqa: E402
from edge.pipeline import Pipeline  # noqa: E402


def rss_mb() -> float:
    """Return this process's resident memory now, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


PAGE_CLIENT = r"""
import socket, sys, threading, time, urllib.request
url, frames, stop = sys.argv[1], [0], threading.Event()
def stream():
    host, port = url.split("//")[1].rstrip("/").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(b"GET /api/live.mjpg HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        sock.settimeout(0.5)
        while not stop.is_set():
            try:
                data = sock.recv(65536)
            except socket.timeout:
                continue
            if not data:
                return
            frames[0] += data.count(b"Content-Type: image/jpeg")
threading.Thread(target=stream, daemon=True).start()
while not stop.is_set():
    for path in ("api/status", "api/events"):
        with urllib.request.urlopen(url + path, timeout=10) as r:
            r.read()
    if sys.stdin.readline() != "\n":   # the benchmark writes a newline every 2 s, closes stdin to stop
        stop.set()
print(frames[0])
"""


class PageClient:
    """What an open page asks for, from another process (as a browser elsewhere would): the MJPEG live view read
    continuously, /api/status and /api/events every 2 s."""

    def __init__(self, url: str):
        self.frames = 0
        self._proc = subprocess.Popen([sys.executable, "-c", PAGE_CLIENT, url], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, text=True)
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, daemon=True)
        self._ticker.start()

    def _tick(self) -> None:
        while not self._stop.wait(2.0):
            try:
                self._proc.stdin.write("\n")
                self._proc.stdin.flush()
            except (BrokenPipeError, ValueError):
                return

    def close(self) -> None:
        self._stop.set()
        self._ticker.join(3)
        try:
            self._proc.stdin.close()
        except BrokenPipeError:
            pass
        out = self._proc.stdout.read()
        self._proc.wait(15)
        self.frames = int(out.strip() or 0)


def timed(fn, acc: list):
    """Return ``fn`` wrapped to add the seconds each call takes to ``acc[0]`` (wall clock) and ``acc[1]`` (CPU of
    the calling thread: without the time it waited for the CPU or the GIL)."""
    def wrapper(*args, **kwargs):
        t, c = time.perf_counter(), time.thread_time()
        try:
            return fn(*args, **kwargs)
        finally:
            acc[0] += time.perf_counter() - t
            acc[1] += time.thread_time() - c
    return wrapper


def build_settings(folder: Path, tiny: bool) -> Settings:
    s = Settings()
    s.source.realtime = False
    s.source.loop = True
    s.display.window = False
    s.recognition.gallery = str(folder / "gallery" / "gallery.npz")
    if tiny:
        from tests.helpers.live_setup import BUNDLES, build_models
        s.models.dir = str(build_models(folder / "models"))
        s.models.bundles = list(BUNDLES)
    else:
        s.models.dir = str(REPO / "models")
    return s


def enroll(settings: Settings) -> str:
    from edge.enroll import EnrollResult, Sample, embedding_bundle, make_enroller
    from edge.people import save_enrollment
    from tests.helpers.live_setup import demo_frames

    bundle = embedding_bundle(settings)
    enroller = make_enroller(settings, bundle)
    result = EnrollResult()
    for i, frame in zip((0, 10, 20), demo_frames((0, 10, 20))):
        item = enroller.sample(frame, f"demo frame {i}")
        (result.samples if isinstance(item, Sample) else result.skipped).append(item)
    return save_enrollment(settings, bundle.manifest, "Eileen Collins", result).message


def run_once(settings: Settings, frames: int, config: str, broker) -> dict:
    """Run ``frames`` frames (after 60 of warm-up) in one configuration; return the figures."""
    s = copy.deepcopy(settings)
    if config != "A":
        s.mqtt.enabled = True
        s.mqtt.host, s.mqtt.port, s.mqtt.device_id = "127.0.0.1", broker.port, "bench"
        s.web.enabled, s.web.port = True, 0
        if broker.proc is None or broker.proc.poll() is not None:
            broker.start()
    pipeline = Pipeline(s)
    outputs = attach_outputs(pipeline, s)
    client = None
    spent = [0.0, 0.0]     # seconds the integrations took on the loop's own thread: wall clock, CPU
    if outputs is not None:
        pipeline.on_tracks[:] = [timed(f, spent) for f in pipeline.on_tracks]
        pipeline.on_frame[:] = [timed(f, spent) for f in pipeline.on_frame]
        outputs.hub.emit = timed(outputs.hub.emit, spent)
        outputs.web.app.live.write = timed(outputs.web.app.live.write, spent)
    pipeline.open()
    out: dict = {}
    try:
        if outputs is not None:
            deadline = time.monotonic() + 10
            while not outputs.mqtt.stats()["connected"] and time.monotonic() < deadline:
                time.sleep(0.05)
            client = PageClient(outputs.web.url)
        for _ in range(60):
            pipeline.step()
        if config == "C":
            broker.kill()
        elif config == "D":
            broker.pause()
        spent[0] = spent[1] = 0.0
        cpu0, t0, f0 = time.process_time(), time.perf_counter(), pipeline.frame_index
        for _ in range(frames):
            pipeline.step()
        dt, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        n = pipeline.frame_index - f0
        out.update(fps=n / dt, cpu_ms=1000 * cpu / n, rss_mb=rss_mb(), loop_us=1e6 * spent[0] / n,
                   loop_cpu_us=1e6 * spent[1] / n)
        if outputs is not None:
            out.update(mqtt=outputs.mqtt.stats(), live_encoded=outputs.web.app.live.encoded)
    finally:
        if client is not None:
            client.close()
            out["live"] = client.frames
        if config == "D":
            broker.resume()
        pipeline.close()
        if outputs is not None:
            outputs.close()
    return out


def memory(folder: Path, tiny: bool) -> None:
    """Print the resident memory of a fresh loop process without the page, with it open, after one photo."""
    import urllib.request
    from tests.helpers.live_setup import demo_frames, jpeg

    settings = build_settings(folder, tiny)
    pipeline = Pipeline(settings)
    pipeline.open()
    for _ in range(300):
        pipeline.step()
    alone = rss_mb()
    pipeline.close()
    s = copy.deepcopy(settings)
    s.web.enabled, s.web.port = True, 0
    pipeline = Pipeline(s)
    outputs = attach_outputs(pipeline, s)
    client = PageClient(outputs.web.url)
    pipeline.open()
    for _ in range(300):
        pipeline.step()
    open_rss = rss_mb()
    request = urllib.request.Request(outputs.web.url + "api/recognize", data=jpeg(demo_frames([60])[0]),
                                     method="POST", headers={"Content-Type": "image/jpeg"})
    with urllib.request.urlopen(request, timeout=60) as reply:
        reply.read()
    for _ in range(60):
        pipeline.step()
    photo = rss_mb()
    client.close()
    pipeline.close()
    outputs.close()
    print(f"resident memory of a fresh process, 300 frames each: loop alone {alone:.1f} MB; the same loop with the "
          f"page open (live view read, polling) {open_rss:.1f} MB ({open_rss - alone:+.1f}); after the first "
          f"POST /api/recognize (on the loop's models) {photo:.1f} MB ({photo - alone:+.1f})")


def measure(args: argparse.Namespace, settings: Settings, broker, folder: Path) -> None:
    """Run the rounds, print each run and the table, then the memory figures."""
    results: dict[str, list[dict]] = {c: [] for c in "ABCD"}
    for r in range(args.rounds):
        for config in "ABCD":
            res = run_once(settings, args.frames, config, broker)
            results[config].append(res)
            extra = ""
            if "mqtt" in res:
                m = res["mqtt"]
                extra = (f", live frames read {res['live']}, mqtt sent {m['sent']} queued {m['queued']} "
                         f"dropped {m['dropped']}")
            print(f"  round {r + 1} {config}: {res['fps']:.1f} frames/s, {res['cpu_ms']:.2f} CPU ms/frame, "
                  f"integrations on the loop's thread {res['loop_us']:.0f} us/frame ({res['loop_cpu_us']:.0f} us CPU)"
                  f"{extra}")
    base = statistics.median(r["fps"] for r in results["A"])
    names = {"A": "plain (no integration)", "B": "MQTT on + page open (live view, polling)",
             "C": "... broker killed", "D": "... broker paused (SIGSTOP)"}
    print("\n| configuration | frames/s (median) | vs plain | CPU ms/frame (all threads) | integrations on the loop's "
          "thread, us/frame: wall (CPU) |")
    print("|---|---|---|---|---|")
    for config in "ABCD":
        fps = statistics.median(r["fps"] for r in results[config])
        cpu = statistics.median(r["cpu_ms"] for r in results[config])
        loop_us = statistics.median(r["loop_us"] for r in results[config])
        loop_cpu = statistics.median(r["loop_cpu_us"] for r in results[config])
        print(f"| {names[config]} | {fps:.1f} | {100 * (fps / base - 1):+.1f} % | {cpu:.2f} | "
              f"{'-' if config == 'A' else f'{loop_us:.0f} ({loop_cpu:.0f})'} |")

    # Memory in a fresh process: the loop alone, with the page open, after the page's first photo.
    done = subprocess.run([sys.executable, __file__, "--memory", str(folder)] + (["--tiny"] if args.tiny else []),
                          capture_output=True, text=True, timeout=600)
    print("\n" + (done.stdout.strip() or done.stderr[-2000:]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tiny", action="store_true", help="the tiny test bundles instead of models/")
    parser.add_argument("--memory", metavar="FOLDER", help=argparse.SUPPRESS)   # the fresh memory process
    args = parser.parse_args()
    if args.memory:
        memory(Path(args.memory), args.tiny)
        return 0

    from tests.helpers.mosquitto import MOSQUITTO, Mosquitto
    if MOSQUITTO is None:
        print("mosquitto is not installed (apt install mosquitto)")
        return 1
    folder = Path(tempfile.mkdtemp(prefix="bench-integrations-"))
    settings = build_settings(folder, args.tiny)
    print(enroll(settings))
    broker = Mosquitto(folder / "broker")
    print(f"load average at start: {os.getloadavg()[0]:.1f}; {args.frames} frames per run, {args.rounds} rounds")
    try:
        measure(args, settings, broker, folder)
    finally:
        broker.stop()
    print(f"load average at end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
