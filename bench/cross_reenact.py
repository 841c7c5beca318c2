"""Cross-reenactment fidelity over every source x driving pair of the media, as the dlib observer sees it.

    python bench/cross_reenact.py [--sources s42.jpg ...] [--driving d3 ...] [--frames 48] [--work DIR]
                                  [--json FILE] [--sheet DIR] [--rerun] [-- EXTRA REENACT.RUN ARGS]

Each pair runs the real command line (`python -m reenact.run SOURCE CLIP --end N`, the defaults users get; its
output is cached in the work folder per pair, frame count and extra args). The output, the driving frames and
the source are observed by dlib (`reenact.observe`, no model shared with the pipeline) and compared as
`python -m reenact.evaluate` does: relative pose error over the driver's motion, per-axis output/driver std
ratios, per-descriptor correlation (r) and std ratio (sr) of mouth opening, mouth width, eye openness and brow
height, and the identity distances to the source and to the driver. Each figure is checked against the fidelity
issue's targets (TARGETS); a driver that barely moves a descriptor leaves it undefined ("-", not counted).
Pose targets are judged only where the driver's head really moves (MIN_POSE_STD, MIN_POSE_MOTION). `--sheet DIR`:
per pair, driving | output at a third and two thirds of the clip; `--table FILE`: the table of a saved --json.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from reenact.inputs import tensor_to_frames
from reenact.observe import EXPRESSIONS, compare_observations, load_observer, observe_video
from third_party_wrappers.image import read_image, write_image
from third_party_wrappers.video import open_video

ROOT = Path(__file__).resolve().parents[1]
MEDIA = ROOT.parent / "shared" / "media"
SOURCES = ("s42.jpg", "s12.jpg", "s9.jpg", "s4.jpg", "obama.jpg", "d30.jpg", "d38.jpg", "face_open_mouth.jpg")
DRIVING = ("d0", "d3", "d19", "vs18", "vs20", "vs29", "vs32", "vs13")
POSE_ERROR, POSE_STD = 0.5, (0.8, 1.25)
EXPRESSION_R = {"mouth_open": 0.8, "mouth_width": 0.8, "eyes_open": 0.7, "brows": 0.6}
EXPRESSION_STD = (0.7, 1.3)
IDENTITY, IDENTITY_GAP = 0.45, 0.15
EVERY = 8  # identity descriptors on every 8th frame
MIN_POSE_STD, MIN_POSE_MOTION = 1.0, 2.0  # deg: driver pose std per axis, mean motion over all axes, to judge pose


def render(source: Path, clip: Path, n: int, extra: list[str], work: Path, rerun: bool):
    """The reenact.run output for the pair, its seconds (None: cached) and its one-line error (None: success)."""
    key = hashlib.sha256(json.dumps([n, extra]).encode()).hexdigest()[:10]
    out = work / f"{source.stem}--{clip.stem}-{n}-{key}.mp4"
    if out.exists() and not rerun:
        return out, None, None
    t0 = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "reenact.run", str(source), str(clip), "--end", str(n), "-o", str(out),
                          "-q", "--work-dir", str(work / "reenact"), *extra], stderr=subprocess.PIPE, text=True)
    lines = run.stderr.strip().splitlines()
    return out, time.perf_counter() - t0, (lines[-1] if lines else f"exit {run.returncode}") if run.returncode else None


def verdicts(c: dict) -> dict:
    """Each target of the fidelity issue for one comparison (`ObserverComparison.to_dict()`): True/False, None
    where undefined. Pose targets need real head motion: an axis whose driver std is under MIN_POSE_STD, or a
    clip whose driver moves under MIN_POSE_MOTION in all, is not judged (the observer's own noise rules there)."""
    def within(x, lo, hi):
        return None if x is None else lo <= x <= hi

    moving = c["driver_motion"][3] is not None and c["driver_motion"][3] >= MIN_POSE_MOTION
    out = {"pose_error": c["pose_error_ratio"][3] <= POSE_ERROR if moving and c["pose_error_ratio"][3] is not None
           else None}
    for i, axis in enumerate(("yaw", "pitch", "roll")):
        out[f"{axis}_std"] = within(c["pose_std_ratio"][i], *POSE_STD) if c["driver_std"][i] >= MIN_POSE_STD else None
    for name in EXPRESSIONS:
        r, sr = c["expression_correlation"][name], c["expression_std_ratio"][name]
        out[f"{name}_r"] = None if r is None else r >= EXPRESSION_R[name]
        out[f"{name}_sr"] = within(sr, *EXPRESSION_STD) if r is not None else None
    ids = (c["identity_to_source"], c["identity_to_driver"])
    out["identity"] = None if None in ids else ids[0] < IDENTITY and ids[0] <= ids[1] - IDENTITY_GAP
    return out


def sheet(path: Path, driving: np.ndarray, output: Path) -> None:
    """Driving | output at a third and two thirds of the clip, stacked."""
    n = len(driving)
    picks = [n // 3, 2 * n // 3]
    with open_video(output) as reader:
        frames = reader.read(picks)
    rows = []
    for d, o in zip(driving[picks], frames):
        dt, ot = (torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1)[None].float() / 255 for x in (d, o))
        h = ot.shape[-2]
        dt = torch.nn.functional.interpolate(dt, size=(h, round(dt.shape[-1] * h / dt.shape[-2])), mode="area")
        rows.append(torch.cat([dt, ot], -1))
    width = min(r.shape[-1] for r in rows)
    write_image(path, tensor_to_frames(torch.cat([r[..., :width] for r in rows], -2))[0])


def fmt(x, f=".2f") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, f)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    cut = argv.index("--") if "--" in argv else len(argv)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sources", nargs="+", default=list(SOURCES))
    p.add_argument("--driving", nargs="+", default=list(DRIVING))
    p.add_argument("--frames", type=int, default=48)
    p.add_argument("--work", type=Path, default=ROOT / "outputs" / "cross_reenact")
    p.add_argument("--json", type=Path)
    p.add_argument("--sheet", type=Path)
    p.add_argument("--rerun", action="store_true")
    p.add_argument("--table", type=Path, help="only print the table of a saved --json file")
    args, extra = p.parse_args(argv[:cut]), argv[cut + 1:]
    if args.table:
        print(table(json.loads(args.table.read_text())))
        return 0
    args.work.mkdir(parents=True, exist_ok=True)
    faces = load_observer()
    drivers = {}
    for name in args.driving:
        with open_video(MEDIA / f"{name}.mp4") as reader:
            frames = reader.read(range(min(args.frames, reader.info.n_frames)))
        drivers[name] = (frames, observe_video(frames, every=EVERY, faces=faces))
    sources = {name: observe_video(read_image(MEDIA / name)[None], faces=faces) for name in args.sources}
    results = []
    for clip in args.driving:
        frames, drv = drivers[clip]
        for name in args.sources:
            out, seconds, error = render(MEDIA / name, MEDIA / f"{clip}.mp4", len(frames), extra, args.work, args.rerun)
            row = {"source": name, "driving": clip, "frames": len(frames), "render_s": seconds, "error": error}
            if error is None:
                c = compare_observations(observe_video(out, every=EVERY, faces=faces), drv, sources[name]).to_dict()
                c["driver_std"] = drv.angles[drv.found].std(0).tolist()
                row["comparison"] = c
                if args.sheet:
                    args.sheet.mkdir(parents=True, exist_ok=True)
                    sheet(args.sheet / f"{Path(name).stem}--{clip}.png", frames, out)
            results.append(row)
            print(f"{name} + {clip}: {error or 'done'}", file=sys.stderr, flush=True)
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


def table(results: list[dict]) -> str:
    """One row per pair (figures, then the targets it misses), per target the number of pairs that meet it,
    and the refused pairs with their one-line reason."""
    head = ["pair", "err/motion", "std y/p/r"] + [f"{n} r/sr" for n in EXPRESSIONS] + ["id src/drv", "fails"]
    rows, counts, refused = [head], {}, []
    for r in results:
        pair = f"{Path(r['source']).stem}+{r['driving']}"
        if r["error"]:
            refused.append(f"{pair}: {r['error']}")
            continue
        c = r["comparison"]
        v = verdicts(c)
        for key, ok in v.items():
            if ok is not None:
                counts.setdefault(key, [0, 0])
                counts[key][0] += ok
                counts[key][1] += 1
        rows.append([pair, fmt(c["pose_error_ratio"][3]), "/".join(fmt(x) for x in c["pose_std_ratio"])]
                    + [f"{fmt(c['expression_correlation'][n])}/{fmt(c['expression_std_ratio'][n])}" for n in EXPRESSIONS]
                    + [f"{fmt(c['identity_to_source'])}/{fmt(c['identity_to_driver'])}",
                       " ".join(k for k, ok in v.items() if ok is False) or "none"])
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.append("targets met (pairs where defined): " + ", ".join(f"{k} {a}/{b}" for k, (a, b) in counts.items()))
    return "\n".join(lines + [f"refused {x}" for x in refused])


if __name__ == "__main__":
    sys.exit(main())
