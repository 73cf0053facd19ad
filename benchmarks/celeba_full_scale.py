"""Full-size CelebA layout: does the trainer stream 202,599 faces within 4 GB of RSS? Times and RSS per phase.

    python benchmarks/celeba_full_scale.py [--root /work/cache/celeba-full-synthetic] [--size 112]
                                           [--fit-steps 100] [--cache-dir /work/cache/celeba-full-bench]

Makes (once) a generated data set in the official CelebA layout with as many images as the real
release: ``img_align_celeba/000001.jpg`` .. ``202599.jpg`` (small 64x78 drawn faces, a third of the
aligned CelebA size), ``list_attr_celeba.txt`` (the 40 attribute names, random labels),
``list_eval_partition.txt`` (the official 162,770 / 19,867 / 19,962 split) and
``identity_CelebA.txt``. It lives outside the repository and is never committed.

Then a child process runs the trainer's own code on it, phase by phase, while this process
samples the child's RSS (VmRSS, and its anonymous and file-backed parts) from /proc every 0.2 s:

1. ``read``: trainer.tasks.attributes.load_faces (read_celeba: 202,599 label rows, the image folder)
2. ``crop cache``: face_crops -> trainer.faces.cached_face_crops, Haar + edge.crop on every image,
   written row by row into a .npy cache (built on the first run; later runs find it)
3. ``train stream``: one full epoch of make_dataset over the 162,770 training faces, batch 64, with
   the default augmentation, as face-train fit feeds Keras
4. ``fit``: an attribute model (MobileNetV2 0.35, 40 sigmoid outputs) trained for --fit-steps
   steps on that stream
5. ``val outputs``: trainer.infer.model_outputs over the 19,867 validation faces (threshold tuning)

The floor (issue 21): RSS under 4 GB throughout.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

N_IMAGES = 202_599
SPLITS = (162_770, 19_867, 19_962)
IDENTITIES = 10_177
ATTRIBUTES = ("5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair "
              "Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair "
              "Heavy_Makeup High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face "
              "Pale_Skin Pointy_Nose Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair "
              "Wearing_Earrings Wearing_Hat Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young").split()
WIDTH, HEIGHT = 64, 78
VARIANTS = 4096
FLOOR_GB = 4.0


# --- the generated data set ----------------------------------------------------------------------
def drawn_face(rng: np.random.Generator) -> np.ndarray:
    """Return a WIDTH x HEIGHT BGR image of a drawn face (skin oval, eyes, brows, mouth) on a noisy background."""
    import cv2

    img = rng.integers(30, 200, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    img = cv2.GaussianBlur(img, (0, 0), 3)
    cx, cy = WIDTH // 2 + int(rng.integers(-4, 5)), HEIGHT // 2 + int(rng.integers(-4, 5))
    skin = tuple(int(v) for v in rng.integers(90, 230, 3))
    cv2.ellipse(img, (cx, cy), (int(WIDTH * 0.3), int(HEIGHT * 0.33)), 0, 0, 360, skin, -1)
    dark = tuple(int(v) for v in rng.integers(0, 60, 3))
    for side in (-1, 1):
        ex = cx + side * int(WIDTH * 0.12)
        cv2.ellipse(img, (ex, cy - int(HEIGHT * 0.08)), (5, 3), 0, 0, 360, dark, -1)
        cv2.line(img, (ex - 6, cy - int(HEIGHT * 0.15)), (ex + 6, cy - int(HEIGHT * 0.15)), dark, 2)
    cv2.ellipse(img, (cx, cy + int(HEIGHT * 0.16)), (9, 3 + int(rng.integers(0, 3))), 0, 0, 180, dark, 2)
    cv2.line(img, (cx, cy - 2), (cx - 2, cy + 8), tuple(max(0, v - 40) for v in skin), 1)
    noise = rng.normal(0, 6, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def generate(root: Path, n_images: int = N_IMAGES) -> float:
    """Write the generated CelebA layout under ``root`` (skipped when complete); return the seconds it took."""
    import cv2

    images = root / "img_align_celeba"
    marker = root / ".complete"
    if marker.is_file():
        return 0.0
    started = time.monotonic()
    images.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2021)
    encoded = [cv2.imencode(".jpg", drawn_face(rng), [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
               for _ in range(VARIANTS)]
    names = [f"{i:06d}.jpg" for i in range(1, n_images + 1)]
    for i, name in enumerate(names):
        (images / name).write_bytes(encoded[i % VARIANTS])
    rates = rng.uniform(0.05, 0.5, len(ATTRIBUTES))
    labels = np.where(rng.random((n_images, len(ATTRIBUTES))) < rates, "1", "-1")
    with open(root / "list_attr_celeba.txt", "w") as fh:
        fh.write(f"{n_images}\n{' '.join(ATTRIBUTES)}\n")
        fh.writelines(f"{name} {' '.join(row)}\n" for name, row in zip(names, labels))
    counts = [round(n_images * c / N_IMAGES) for c in SPLITS[:2]]
    split = np.repeat([0, 1, 2], counts + [n_images - sum(counts)])
    with open(root / "list_eval_partition.txt", "w") as fh:
        fh.writelines(f"{name} {p}\n" for name, p in zip(names, split))
    ids = rng.integers(1, IDENTITIES + 1, n_images)
    with open(root / "identity_CelebA.txt", "w") as fh:
        fh.writelines(f"{name} {i}\n" for name, i in zip(names, ids))
    marker.write_text("generated by benchmarks/celeba_full_scale.py\n")
    return time.monotonic() - started


# --- the measured child --------------------------------------------------------------------------
def phase(name: str) -> None:
    """Mark the start of a phase on stdout (the parent attributes RSS samples by these marks)."""
    print(f"PHASE {name} {time.monotonic():.3f}", flush=True)


def child(args: argparse.Namespace) -> None:
    """Run the trainer's phases on the generated data set (module docstring), printing phase marks and figures."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from edge.crop import CropSpec
    from trainer.tasks.attributes import face_crops, load_faces, make_dataset

    figures: dict[str, object] = {}
    phase("read")
    faces = load_faces(args.root)
    figures["images"] = len(faces.paths)
    phase("crop cache")
    started = time.monotonic()
    crops, ok, stats = face_crops(faces, CropSpec(args.size, 0.25), 0.0, args.cache_dir)
    figures["crop_cache_s"] = round(time.monotonic() - started, 1)
    figures["crop_stats"] = {k: stats[k] for k in ("total", "detected", "fallback", "corrupt")}
    figures["cache_gb"] = round(Path(crops.path).stat().st_size / 1e9, 2)
    train = np.flatnonzero((faces.partition == 0) & ok)
    val = np.flatnonzero((faces.partition == 1) & ok)

    import keras

    from trainer import nets
    from trainer.augment import build_augmenter, parse_augment_arg
    from trainer.infer import model_outputs

    phase("train stream")
    ds = make_dataset(crops, faces.labels, train, 64, True, build_augmenter(parse_augment_arg("default")), 1729)
    started, seen = time.monotonic(), 0
    for x, _ in ds:
        seen += int(x.shape[0])
    figures["stream_faces"] = seen
    figures["stream_faces_per_s"] = round(seen / (time.monotonic() - started), 1)

    phase("fit")
    keras.utils.set_random_seed(0)
    backbone = nets.build_backbone("mobilenet_v2", 0.35, args.size, None)
    out = nets.sigmoid_head(nets.pooled_features(backbone), len(faces.label_names), "attributes")
    model = keras.Model(backbone.input, {"attributes": out})
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss={"attributes": "binary_crossentropy"})
    started = time.monotonic()
    model.fit(ds.repeat(), steps_per_epoch=args.fit_steps, epochs=1, verbose=0)
    figures["fit_steps"] = args.fit_steps
    figures["fit_faces_per_s"] = round(args.fit_steps * 64 / (time.monotonic() - started), 1)

    phase("val outputs")
    started = time.monotonic()
    prob = model_outputs(model, crops, rows=val)["attributes"]
    figures["val_faces"] = int(prob.shape[0])
    figures["val_outputs_s"] = round(time.monotonic() - started, 1)
    phase("end")
    print("FIGURES " + json.dumps(figures), flush=True)


# --- the measuring parent ------------------------------------------------------------------------
def _rss(pid: int) -> dict[str, int]:
    """Return {VmRSS, VmHWM, RssAnon, RssFile} of ``pid`` in kB (empty once it has exited)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        key = line.split(":")[0]
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            out[key] = int(line.split()[1])
    return out


def measure(args: argparse.Namespace) -> int:
    """Run the child, sample its RSS, print a table per phase; return 0 when RSS stayed under the floor."""
    cmd = [sys.executable, __file__, "--child", "--root", str(args.root), "--size", str(args.size),
           "--fit-steps", str(args.fit_steps), "--cache-dir", str(args.cache_dir)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    samples: list[tuple[float, dict[str, int]]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            value = _rss(proc.pid)
            if value:
                samples.append((time.monotonic(), value))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    marks: list[tuple[str, float]] = []
    figures: dict = {}
    last_hwm = 0
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("PHASE "):
            parts = line.split()
            marks.append((" ".join(parts[1:-1]), float(parts[-1])))
            value = _rss(proc.pid)
            last_hwm = max(last_hwm, value.get("VmHWM", 0))
        elif line.startswith("FIGURES "):
            figures = json.loads(line[len("FIGURES "):])
            last_hwm = max(last_hwm, _rss(proc.pid).get("VmHWM", 0))
        else:
            print(line, end="")
    code = proc.wait()
    done.set()
    sampler.join()
    if code != 0:
        print(f"the measured child failed with exit {code}")
        return 1
    print(f"\nCelebA layout ({figures['images']:,} images, {args.size} px crops, cache "
          f"{figures['cache_gb']} GB on disk), load average at the end {os.getloadavg()[0]:.1f}:\n")
    print("| phase | seconds | peak RSS (GB) | of which anonymous | of which file-backed |")
    print("|---|---|---|---|---|")
    worst = 0.0
    for (name, start), (_, end) in zip(marks, marks[1:]):
        inside = [s for t, s in samples if start <= t <= end]
        if not inside:   # shorter than one sample
            print(f"| {name} | {end - start:.1f} | - | - | - |")
            continue
        peak = max(s.get("VmRSS", 0) for s in inside) / 1e6 * 1.024
        anon = max(s.get("RssAnon", 0) for s in inside) / 1e6 * 1.024
        file_ = max(s.get("RssFile", 0) for s in inside) / 1e6 * 1.024
        worst = max(worst, peak)
        print(f"| {name} | {end - start:.0f} | {peak:.2f} | {anon:.2f} | {file_:.2f} |")
    hwm = last_hwm / 1e6 * 1.024
    print(f"\npeak RSS of the whole run (VmHWM): {hwm:.2f} GB (floor {FLOOR_GB:g} GB: "
          f"{'met' if max(hwm, worst) < FLOOR_GB else 'NOT met'})")
    print(f"crop cache build: {figures['crop_cache_s']:.0f} s ({figures['crop_stats']}); training stream "
          f"{figures['stream_faces']:,} faces at {figures['stream_faces_per_s']:.0f} faces/s; fit "
          f"{figures['fit_steps']} steps at {figures['fit_faces_per_s']:.0f} faces/s; validation outputs of "
          f"{figures['val_faces']:,} faces in {figures['val_outputs_s']:.0f} s")
    return 0 if max(hwm, worst) < FLOOR_GB else 1


def main() -> int:
    """Generate the data set when needed, then measure the trainer on it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("/work/cache/celeba-full-synthetic"),
                        help="where the generated CelebA layout is (made once; not in the repository)")
    parser.add_argument("--cache-dir", type=Path, default=Path("/work/cache/celeba-full-bench"),
                        help="the crop cache of this benchmark")
    parser.add_argument("--size", type=int, default=112, help="crop size (the shipped attribute model's 112 px)")
    parser.add_argument("--fit-steps", type=int, default=100, help="training steps of the fit phase")
    parser.add_argument("--images", type=int, default=N_IMAGES,
                        help="images to generate (default: the full release's 202,599; fewer for a quick check)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return 0
    seconds = generate(args.root, args.images)
    if seconds:
        print(f"generated {args.images:,} images in the CelebA layout under {args.root} in {seconds:.0f} s")
    return measure(args)


if __name__ == "__main__":
    sys.exit(main())
