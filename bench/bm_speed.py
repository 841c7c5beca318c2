"""Speed and memory of the default path as a user runs it: the whole `python -m reenact.run` process.

    python bench/bm_speed.py [--runs 3] [--baseline CHECKOUT] [--cases 512 1280 memory ict] [--work DIR]

Each case runs `python -m reenact.run SOURCE DRIVING -o OUT --no-cache -q` in a fresh process (imports, model
loading, tracking, rendering, encoding: everything a user waits for) `--runs` times; printed are the median
seconds, frames/s and the peak resident memory of the process, against the speed and memory issue's targets
(TARGETS) and, with `--baseline`, against another checkout of the package (e.g. `git worktree add /tmp/old
COMMIT`) run the same way, as ratios. Cases:

- `512`: s42.jpg (512 x 512) + d3.mp4 (512 x 512, 354 frames): >= 25 frames/s.
- `1280`: s9.jpg (720 x 1280, the size cap) and obama.jpg (910 x 1137) + d3.mp4: >= 15 frames/s.
- `memory`: s42.jpg + d3.mp4 looped (forth and back, so the motion has no jump) to 100, 1008 and 3000 frames,
  one run each: peak < 1.5 GB at 1008 frames and within 10 % of the 100-frame peak.
- `ict`: s42.jpg + d3.mp4 with `--face.model ict` (the dense face; the model from ../shared or --ict-model)
  against the default model: <= 1.3 x its time.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MEDIA = ROOT.parent / "shared" / "media"
ICT = ROOT.parent / "shared" / "facemodels" / "ict-facekit" / "ict_face_model.npz"
TARGETS = {"512": 25.0, "1280": 15.0}  # frames/s
MEMORY_GB, MEMORY_FLAT, ICT_RATIO = 1.5, 1.10, 1.3
LOOPS = (100, 1008, 3000)


def looped(clip: Path, n: int, work: Path) -> Path:
    """The clip played forth and back to n frames (written once into `work`)."""
    out = work / f"{clip.stem}_{n}.mp4"
    if not out.exists():
        from third_party_wrappers.video import VideoWriter, open_video

        with open_video(clip) as reader:
            frames, fps = reader.read(range(reader.info.n_frames)), reader.info.fps
        order = np.arange(n) % (2 * len(frames))
        order = np.where(order < len(frames), order, 2 * len(frames) - 1 - order)
        with VideoWriter(out, fps, frames.shape[2], frames.shape[1]) as writer:
            for i in range(0, n, 64):
                writer.write(frames[order[i:i + 64]])
    return out


def run_once(package: Path, source: Path, driving: Path, out: Path, extra: list[str]) -> tuple[float, float]:
    """Seconds and peak resident GB of one whole `python -m reenact.run` process importing `package` (run in
    it: `-m` puts the working directory first on the path)."""
    env = dict(os.environ, PYTHONPATH=str(package))
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "reenact.run", str(source), str(driving), "-o", str(out),
                             "--no-cache", "-q", *extra], env=env, cwd=package, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    secs = time.perf_counter() - t0
    err = proc.stderr.read().strip().splitlines()
    proc.stderr.close()
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"{source.name} + {driving.name}: {err[-1] if err else 'failed'}")
    return secs, usage.ru_maxrss / 2**20


def measure(packages: dict[str, Path], source: Path, driving: Path, runs: int, work: Path,
            extra=()) -> dict[str, tuple[float, float]]:
    """Per package: median seconds and the largest peak GB over `runs` runs. The packages take turns run by run,
    so the machine's drift (about 10 % between minutes) falls on all of them alike."""
    results = {name: [] for name in packages}
    for _ in range(runs):
        for name, package in packages.items():
            results[name].append(run_once(package, source, driving, work / "out.mp4", list(extra)))
    return {name: (statistics.median(r[0] for r in rs), max(r[1] for r in rs)) for name, rs in results.items()}


def n_frames(video: Path) -> int:
    from third_party_wrappers.video import open_video

    with open_video(video) as reader:
        return reader.info.n_frames


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--baseline", type=Path, help="another checkout of the package to compare with")
    p.add_argument("--cases", nargs="+", default=["512", "1280", "memory", "ict"],
                   choices=["512", "1280", "memory", "ict"])
    p.add_argument("--ict-model", type=Path, default=ICT)
    p.add_argument("--work", type=Path, default=ROOT / "outputs" / "bm_speed")
    args = p.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    packages = {"this": ROOT, **({"baseline": args.baseline.resolve()} if args.baseline else {})}
    d3 = MEDIA / "d3.mp4"
    print(f"{'case':<34}{'frames':>7}{'seconds':>9}{'frames/s':>10}{'target':>8}{'ratio':>7}{'peak GB':>9}"
          f"{'vs baseline':>13}")

    def row(label, frames, secs, peak, target=None, base=None):
        fps = frames / secs
        cells = f"{label:<34}{frames:>7}{secs:>9.2f}{fps:>10.1f}"
        cells += f"{target:>8.0f}{fps / target:>7.2f}" if target else f"{'':>15}"
        cells += f"{peak:>9.2f}" + (f"{base / secs:>12.2f}x" if base else "")
        print(cells, flush=True)

    def case(label, source, driving, runs, target=None, extra=()):
        frames = n_frames(driving)
        found = measure(packages, source, driving, runs, args.work, extra)
        base = found.get("baseline", (None,))[0]
        row(label, frames, *found["this"], target, base)
        if base:
            row("  baseline", frames, *found["baseline"], target)
        return found["this"]

    if "512" in args.cases:
        case("s42 (512) + d3", MEDIA / "s42.jpg", d3, args.runs, TARGETS["512"])
    if "1280" in args.cases:
        case("s9 (720x1280) + d3", MEDIA / "s9.jpg", d3, args.runs, TARGETS["1280"])
        case("obama (910x1137) + d3", MEDIA / "obama.jpg", d3, args.runs, TARGETS["1280"])
    if "memory" in args.cases:
        peaks = [case(f"s42 + d3 looped to {n}", MEDIA / "s42.jpg", looped(d3, n, args.work), 1)[1] for n in LOOPS]
        print(f"memory: peak at 1008 frames {peaks[1]:.2f} GB (target < {MEMORY_GB}, ratio {peaks[1] / MEMORY_GB:.2f});"
              f" 1008 / 100 frames {peaks[1] / peaks[0]:.2f}, 3000 / 100 {peaks[2] / peaks[0]:.2f}"
              f" (target <= {MEMORY_FLAT:.2f})")
    if "ict" in args.cases:
        if not args.ict_model.exists():
            print(f"ict: skipped, no ICT-FaceKit model at {args.ict_model}")
        else:
            plain = case("s42 + d3, default model", MEDIA / "s42.jpg", d3, args.runs)[0]
            dense = case("s42 + d3, --face.model ict", MEDIA / "s42.jpg", d3, args.runs,
                         extra=("--face.model", "ict", "--face.path", str(args.ict_model)))[0]
            print(f"ict: {dense / plain:.2f} x the default model's time (target <= {ICT_RATIO})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
