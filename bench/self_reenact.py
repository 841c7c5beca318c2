"""Self-reenactment fidelity: each talking clip drives its own first frame; the output is scored against the truth.

    python bench/self_reenact.py [--clips d3 vs18 ...] [--frames 120] [--work DIR] [--sheet DIR] [--json FILE]
                                 [--rerun] [--observe] [-- EXTRA REENACT.RUN ARGS]

The field's standard protocol: frame 0 of a clip (saved as PNG) is the source, the same clip drives it, so every
output frame has a true frame to match and no observer model is needed. The real command line runs
(`python -m reenact.run SOURCE CLIP --ref-frame 0 --end N`), so the defaults are what users get; its output is
cached in the work folder per clip, frame count and extra args (`--rerun` renders again).

Regions (output pixels): `frame`; `head`, the union of the true frames' face boxes (mediapipe landmarks) grown 30 %
each side; `beside`, the head box's height half a box width to either side plus half a box height above it,
minus the head box; `below`, under the head box across that band's width (the body). Per region: PSNR (dB) and
SSIM (the map of `reenact.quality.ssim` averaged over the region), mean over frames 1..N-1, for the output and
for the trivial baseline "repeat frame 0", and the gain (output - baseline). `moving` is the median absolute
difference (0-255 levels) outside the head box between true frame t and frame 0, mean over t: above MOVING the
camera moves and the background cannot match the source's, so the beside target is not applied ("n/a").
Targets (the issue): head PSNR >= baseline + 4 dB, head SSIM >= baseline + 0.05, beside PSNR within 0.5 dB of
the baseline where the camera is still. `--sheet DIR`: per clip, 4 frames as columns; rows true frame, output,
|difference| x 3 with the head box outlined in green.

`--observe` (needs `pip install "reenact[eval]"`): the dlib observer (`reenact.observe`, no model shared with the
pipeline) reads output and true frames; per clip, output / truth std ratio and correlation of the head angles and
of the expression measures (mouth opening and width, eye openness, brows), and the mean landmark distance to the
truth's per face part (% of the truth's outer eye-corner distance) for the output and for the baseline.
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

import kornia.metrics
import numpy as np
import torch
import torch.nn.functional as F

from reenact.inputs import fit_max_side, frames_to_tensor, tensor_to_frames
from reenact.observe import EXPRESSIONS, compare_observations, load_observer, observe_video
from reenact.quality import SSIM_WINDOW, psnr
from reenact.structures import Tracks
from reenact.track import TrackConfig, track_video
from third_party_wrappers.image import write_image
from third_party_wrappers.video import open_video

ROOT = Path(__file__).resolve().parents[1]
MEDIA = ROOT.parent / "shared" / "media"
CLIPS = ("d0", "d3", "d19", "vs13", "vs18", "vs20", "vs29", "vs32")
REGIONS = ("frame", "head", "beside", "below")
GROW = 0.3  # head box margin, fraction of the box size on each side
MOVING = 3.0  # levels: above this `moving`, the camera is taken to move
HEAD_PSNR_GAIN, HEAD_SSIM_GAIN, BESIDE_TOLERANCE = 4.0, 0.05, 0.5
CHUNK = 8  # frames compared at once
PARTS = {"jaw": range(0, 17), "brows": range(17, 27), "nose": range(27, 36), "eyes": range(36, 48),
         "mouth": range(48, 68)}  # dlib's 68 landmarks
SHEET_FRAMES, SHEET_WIDTH = 4, 1600


def render(clip: Path, n: int, extra: list[str], work: Path, rerun: bool) -> tuple[Path, float | None, str | None]:
    """The reenact.run output for (clip, n, extra), its seconds (None: reused from the work folder) and the error
    reenact.run reported (None: it succeeded)."""
    key = hashlib.sha256(json.dumps([n, extra]).encode()).hexdigest()[:10]
    out = work / f"{clip.stem}-{n}-{key}.mp4"
    if out.exists() and not rerun:
        return out, None, None
    source = work / f"{clip.stem}-frame0.png"
    with open_video(clip) as reader:
        write_image(source, reader.read([0])[0])
    t0 = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "reenact.run", str(source), str(clip), "--ref-frame", "0", "--end",
                          str(n), "-o", str(out), "-q", "--work-dir", str(work / "reenact"), *extra],
                         stderr=subprocess.PIPE, text=True)
    error = f"exit {run.returncode}: {run.stderr.strip().splitlines()[-1] if run.stderr.strip() else ''}"
    return out, time.perf_counter() - t0, error if run.returncode else None


def head_box(clip: Path, n: int, fps: float, work: Path) -> tuple[np.ndarray, float | None]:
    """Union of the face boxes of true frames 0..n-1, grown by GROW each side and clipped (clip px, x0 y0 x1 y1),
    and the tracking seconds (None: tracks reused from the work folder). One worker: one face followed through the
    whole clip (parts tracked at once each start from a fresh detection)."""
    path, seconds = work / f"{clip.stem}-{n}-tracks.npz", None
    if path.exists():
        tracks = Tracks.load(path)
    else:
        t0 = time.perf_counter()
        tracks = track_video(clip, n, fps, TrackConfig(workers=1), progress=False)
        tracks.save(path)
        seconds = time.perf_counter() - t0
    xy = tracks.landmarks[..., :2].reshape(-1, 2).numpy()
    lo, hi = xy.min(0), xy.max(0)
    margin = GROW * (hi - lo)
    size = np.array([tracks.width, tracks.height])
    return np.concatenate([np.clip(lo - margin, 0, size), np.clip(hi + margin, 0, size)]), seconds


def region_masks(box: np.ndarray, h: int, w: int) -> dict[str, torch.Tensor]:
    """Boolean [h, w] masks of REGIONS for a head box (x0, y0, x1, y1) in these pixels."""
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0

    def rect(a0, b0, a1, b1):
        m = torch.zeros(h, w, dtype=torch.bool)
        m[max(0, round(b0)):max(0, round(b1)), max(0, round(a0)):max(0, round(a1))] = True
        return m

    head = rect(x0, y0, x1, y1)
    return {"frame": torch.ones(h, w, dtype=torch.bool), "head": head,
            "beside": rect(x0 - bw / 2, y0 - bh / 2, x1 + bw / 2, y1) & ~head,
            "below": rect(x0 - bw / 2, y1, x1 + bw / 2, h)}


def compare(clip: Path, out: Path, n: int, box: np.ndarray, sheet: Path | None) -> dict:
    """Per-frame PSNR/SSIM of output and baseline in each region, `moving`, and the optional contact sheet."""
    with open_video(clip) as truth_reader, open_video(out) as out_reader:
        (th, tw), (oh, ow) = (truth_reader.info.height, truth_reader.info.width), (out_reader.info.height,
                                                                                  out_reader.info.width)
        if out_reader.info.n_frames < n:
            raise SystemExit(f"{out}: {out_reader.info.n_frames} frames, expected {n}")
        downscaled = th - oh > 1 or tw - ow > 1  # else the writer only dropped an odd row/column
        scale = max(oh, ow) / max(th, tw) if downscaled else 1.0
        masks = region_masks(box * scale, oh, ow)
        weights = {name: m.float()[None, None] for name, m in masks.items() if m.any()}  # empty: NaN
        series = {f"{measure} {who} {name}": [] for measure in ("psnr", "ssim") for who in ("output", "baseline")
                  for name in REGIONS}
        moving, shown = [], []
        picks = set(np.linspace(0, n - 1, SHEET_FRAMES + 1)[1:].round().astype(int).tolist())
        first = None
        for (start, truth), (_, output) in zip(truth_reader.chunks(CHUNK, 0, n), out_reader.chunks(CHUNK, 0, n)):
            if downscaled:
                truth = np.stack([fit_max_side(f, max(oh, ow))[0] for f in truth])
            truth, output = frames_to_tensor(truth[:, :oh, :ow]), frames_to_tensor(output)
            first = truth[:1] if first is None else first
            for who, guess in (("output", output), ("baseline", first.expand_as(truth))):
                ssim_map = kornia.metrics.ssim(guess, truth, SSIM_WINDOW).mean(1, keepdim=True)
                for name, m in weights.items():
                    series[f"psnr {who} {name}"] += psnr(guess, truth, m.expand(len(truth), -1, -1, -1)).tolist()
                    series[f"ssim {who} {name}"] += ((ssim_map * m).sum((1, 2, 3)) / m.sum()).tolist()
            moving += ((truth - first).abs().mean(1)[:, ~masks["head"]].median(1).values * 255).tolist()
            shown += [(truth[i], output[i]) for i in range(len(truth)) if start + i in picks]
    if sheet is not None:
        save_sheet(sheet, shown, box * scale)
    mean = {k: float(np.mean(v[1:])) if v else math.nan for k, v in series.items()}
    regions = {name: {measure: {who: mean[f"{measure} {who} {name}"] for who in ("output", "baseline")}
                      for measure in ("psnr", "ssim")} | {"pixels": int(masks[name].sum())} for name in REGIONS}
    for name in REGIONS:
        for measure in ("psnr", "ssim"):
            r = regions[name][measure]
            r["gain"] = r["output"] - r["baseline"]
    return {"size": [ow, oh], "downscaled": downscaled, "head_box": [round(float(v), 1) for v in box * scale],
            "moving": float(np.mean(moving[1:])), "regions": regions, "per_frame": series}


def observed(clip: Path, out: Path, n: int, faces) -> dict:
    """The dlib observer's view of output against truth (see the module docstring)."""
    with open_video(clip) as truth_reader, open_video(out) as out_reader:
        output = np.concatenate([f for _, f in out_reader.chunks(32, 0, n)])
        oh, ow = output.shape[1:3]
        truth = np.stack([fit_max_side(f, max(oh, ow))[0][:oh, :ow] for _, c in truth_reader.chunks(32, 0, n)
                          for f in c])
    seen_out, seen_truth = (observe_video(v, every=n, faces=faces) for v in (output, truth))
    c = compare_observations(seen_out, seen_truth, seen_truth)
    both = seen_out.found & seen_truth.found
    both[0] = False
    truth_pts = seen_truth.landmarks[both]
    iod = (truth_pts[:, 45] - truth_pts[:, 36]).norm(dim=-1)[:, None]
    errors = {}
    for who, pts in (("output", seen_out.landmarks[both]), ("baseline", seen_truth.landmarks[:1].expand_as(truth_pts))):
        distance = (pts - truth_pts).norm(dim=-1) / iod * 100
        errors[who] = {part: float(distance[:, list(idx)].mean()) for part, idx in PARTS.items()}
    return {"frames": int(both.sum()), "pose_std_ratio": c.pose_std_ratio, "pose_correlation": c.pose_correlation,
            "expression_std_ratio": c.expression_std_ratio, "expression_correlation": c.expression_correlation,
            "landmark_error": errors}


def observed_table(results: list[dict]) -> str:
    """One row per observed clip: pose and expression std ratio / correlation, landmark errors output / baseline."""
    def cell(v, f=".2f"):
        return "-" if v is None else format(v, f)

    rows = [["clip", "yaw", "pitch", "roll", *EXPRESSIONS, *PARTS]]
    for r in results:
        o = r.get("observed")
        if o is None:
            continue
        rows.append([r["clip"], *(f"{cell(s)}/{cell(c)}" for s, c in zip(o["pose_std_ratio"], o["pose_correlation"])),
                     *(f"{cell(o['expression_std_ratio'][k])}/{cell(o['expression_correlation'][k])}"
                       for k in EXPRESSIONS),
                     *(f"{o['landmark_error']['output'][p]:.1f}/{o['landmark_error']['baseline'][p]:.1f}"
                       for p in PARTS)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
                     for row in rows)


def save_sheet(path: Path, shown: list[tuple[torch.Tensor, torch.Tensor]], box: np.ndarray) -> None:
    """Columns of frames; rows true, output, |difference| x 3 (head box outlined), at most SHEET_WIDTH px wide."""
    w = shown[0][0].shape[-1]
    s = min(1.0, SHEET_WIDTH / (w * len(shown)))
    lw = math.ceil(2 / s)
    x0, y0, x1, y1 = (round(float(v)) for v in box)
    green, diffs = torch.tensor([0.0, 1.0, 0.0])[:, None, None], []
    for truth, output in shown:
        d = ((truth - output).abs() * 3).clamp(0, 1)
        d[:, y0:y1, x0:x0 + lw] = d[:, y0:y1, x1 - lw:x1] = green
        d[:, y0:y0 + lw, x0:x1] = d[:, y1 - lw:y1, x0:x1] = green
        diffs.append(d)
    rows = [torch.cat([t for t, _ in shown], 2), torch.cat([o for _, o in shown], 2), torch.cat(diffs, 2)]
    grid = torch.cat(rows, 1)[None]
    if s < 1:
        grid = F.interpolate(grid, size=(round(grid.shape[-2] * s), round(grid.shape[-1] * s)), mode="area")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, tensor_to_frames(grid)[0])


def verdicts(r: dict) -> dict:
    """The issue's targets for one clip: True/False, or None where the target does not apply."""
    head, beside = r["regions"]["head"], r["regions"]["beside"]
    still = r["moving"] <= MOVING and not math.isnan(beside["psnr"]["gain"])
    return {"head_psnr": head["psnr"]["gain"] >= HEAD_PSNR_GAIN, "head_ssim": head["ssim"]["gain"] >= HEAD_SSIM_GAIN,
            "beside_psnr": abs(beside["psnr"]["gain"]) <= BESIDE_TOLERANCE if still else None}


def table(results: list[dict], measure: str, fmt: str, targets: tuple[tuple[str, str], ...]) -> str:
    """One aligned row per clip and a mean row: output, baseline and gain per region, the targets' verdicts and
    (PSNR table) the render seconds."""
    timed = measure == "psnr"

    def cell(v, f=fmt):
        return "-" if v is None or math.isnan(v) else format(v, f)

    def mean(values):
        values = [v for v in values if v is not None and not math.isnan(v)]
        return float(np.mean(values)) if values else math.nan

    whos = (("output", "out", fmt), ("baseline", "base", fmt), ("gain", "gain", "+" + fmt))
    rows = [["clip", "frames", "size", "moving"] + [f"{name} {label}" for name in REGIONS for _, label, _ in whos]
            + [label for label, _ in targets] + ["render s"] * timed]
    for r in results:
        row = [r["clip"], str(r["frames"]), "x".join(map(str, r["size"])), cell(r["moving"], ".1f")]
        row += [cell(r["regions"][name][measure][who], f) for name in REGIONS for who, _, f in whos]
        row += [{True: "pass", False: "FAIL", None: "n/a"}[r["verdicts"][key]] for _, key in targets]
        rows.append(row + [cell(r["render_s"], ".1f")] * timed)
    row = ["mean", "", "", cell(mean([r["moving"] for r in results]), ".1f")]
    row += [cell(mean([r["regions"][name][measure][who] for r in results]), f)
            for name in REGIONS for who, _, f in whos]
    for _, key in targets:
        given = [r["verdicts"][key] for r in results if r["verdicts"][key] is not None]
        row.append(f"{sum(given)}/{len(given)} pass")
    rows.append(row + [cell(mean([r["render_s"] for r in results]), ".1f")] * timed)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
                     for row in rows)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    cut = argv.index("--") if "--" in argv else len(argv)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clips", nargs="+", default=list(CLIPS), help="clip names in the media folder, or video paths")
    p.add_argument("--frames", type=int, default=120, help="use the first N frames of each clip")
    p.add_argument("--work", type=Path, default=ROOT / "outputs" / "self_reenact", help="cache folder")
    p.add_argument("--sheet", type=Path, help="folder for one contact sheet PNG per clip")
    p.add_argument("--json", type=Path, help="save every figure (per-frame series included) to this JSON file")
    p.add_argument("--rerun", action="store_true", help="run reenact again even when its output is cached")
    p.add_argument("--observe", action="store_true", help="also observe output and truth with dlib (reenact[eval])")
    args, extra = p.parse_args(argv[:cut]), argv[cut + 1:]
    args.work.mkdir(parents=True, exist_ok=True)
    results, failed, t_all = [], [], time.perf_counter()
    faces = load_observer() if args.observe else None
    for name in args.clips:
        clip = Path(name) if Path(name).suffix else MEDIA / f"{name}.mp4"
        with open_video(clip) as reader:
            n, fps = min(args.frames, reader.info.n_frames), reader.info.fps
        out, render_s, error = render(clip, n, extra, args.work, args.rerun)
        if error:
            failed.append({"clip": clip.stem, "frames": n, "render_s": render_s, "error": error})
            print(f"{clip.stem}: reenact.run failed ({error})", file=sys.stderr, flush=True)
            continue
        box, track_s = head_box(clip, n, fps, args.work)
        t0 = time.perf_counter()
        r = compare(clip, out, n, box, args.sheet / f"{clip.stem}.png" if args.sheet else None)
        if faces is not None:
            r["observed"] = observed(clip, out, n, faces)
        r |= {"clip": clip.stem, "frames": n, "output": str(out), "render_s": render_s, "track_s": track_s,
              "compare_s": time.perf_counter() - t0}
        r["verdicts"] = verdicts(r)
        results.append(r)
        secs = lambda s: "cached" if s is None else f"{s:.1f} s"  # noqa: E731
        print(f"{clip.stem}: render {secs(render_s)}, track {secs(track_s)}, compare {secs(r['compare_s'])}",
              file=sys.stderr, flush=True)
    print("PSNR dB, mean over frames 1..N-1 (base: repeat frame 0; gain: out - base)")
    print(table(results, "psnr", ".2f", (("head>=+4dB", "head_psnr"), ("beside±0.5dB", "beside_psnr"))))
    print("\nSSIM, mean over frames 1..N-1")
    print(table(results, "ssim", ".3f", (("head>=+0.05", "head_ssim"),)))
    if faces is not None:
        print("\ndlib observer, output against truth: std ratio/correlation of head angles and expression measures; "
              "landmark distance output/baseline (% eye-corner distance)")
        print(observed_table(results))
    for f in failed:
        print(f"{f['clip']}: no output, reenact.run {f['error']}")
    print(f"total {time.perf_counter() - t_all:.0f} s; moving > {MOVING} levels: camera moves (beside n/a); "
          f"render s '-': output reused from {args.work}; extra reenact args: {' '.join(extra) or 'none'}")
    if args.json:
        args.json.write_text(json.dumps({"extra_args": extra, "frames": args.frames, "moving_threshold": MOVING,
                                         "clips": results, "failed": failed}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
