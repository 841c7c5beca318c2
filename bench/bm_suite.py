"""Speed, memory and fidelity of the default (warp) path on a few source/driving pairs, in one table.

    python bench/bm_suite.py [SOURCE:DRIVING ...]     (names in ../shared/media; default s42:d0 s12:d19 obama:d3)

Each pair runs in a fresh process (so its peak memory is its own) through the stage functions of
`reenact.pipeline`: `prepare` twice (with an empty, then a filled track cache: the difference is the
track stage), pose + expression, smoothing and transfer re-timed on the cached tracks, then
`WarpSceneRenderer.chunks` (render, with decoding read ahead), `compose_frames` and the `VideoWriter` (encode).
The output is then scored with `reenact.evaluate`. Compare two commits by running this on each.
"""
from __future__ import annotations

import resource
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import torch

from reenact.cache import WorkDir
from reenact.evaluate import SERIES, Report, evaluate
from reenact.expression import extract_motion, load_face_model
from reenact.pipeline import RunConfig, compose_frames, prepare
from reenact.warp_render import WarpSceneRenderer
from reenact.smooth import smooth_motion
from reenact.structures import Tracks
from reenact.transfer import transfer
from third_party_wrappers.video import VideoWriter, open_video

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "media"
DEFAULT_PAIRS = ("s42:d0", "s12:d19", "obama:d3")
STAGES = ("track", "pose+expression", "smooth", "transfer", "crop+segment", "render", "compose", "encode")


@dataclass(frozen=True)
class PairResult:
    name: str
    frames: int
    seconds: dict  # stage -> seconds
    peak_gb: float
    report: Report


def run_pair(source: Path, driving: Path) -> PairResult:
    cfg, model, secs = RunConfig(progress=False), load_face_model(), dict.fromkeys(STAGES, 0.0)
    with tempfile.TemporaryDirectory() as tmp, open_video(driving) as reader:
        work, out, info = WorkDir(Path(tmp) / "work"), Path(tmp) / "out.mp4", reader.info
        t0 = time.perf_counter()
        prepare(source, driving, reader, cfg, work, model)
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        scene = prepare(source, driving, reader, cfg, work, model)
        warm = time.perf_counter() - t0
        tracks = Tracks.load(next(work.root.glob("driving-tracks-*.npz")))
        t0 = time.perf_counter()
        motion = extract_motion(tracks, model, cfg.transfer.ref_frame)
        t1 = time.perf_counter()
        driving_motion = smooth_motion(motion, cfg.smooth)
        t2 = time.perf_counter()
        transfer(scene.source, driving_motion, cfg.transfer)
        t3 = time.perf_counter()
        secs.update({"track": cold - warm, "pose+expression": t1 - t0, "smooth": t2 - t1, "transfer": t3 - t2,
                     "crop+segment": max(warm - (t3 - t0), 0.0)})
        writer = None
        chunks = WarpSceneRenderer(scene, reader, cfg.warp, cfg.output, torch.device("cpu")).chunks()
        while True:
            t0 = time.perf_counter()
            item = next(chunks, None)
            t1 = time.perf_counter()
            if item is None:
                break
            frames = compose_frames(scene, *item, cfg.output)
            t2 = time.perf_counter()
            writer = writer or VideoWriter(out, info.fps, frames.shape[2], frames.shape[1],
                                           audio_from=driving if info.has_audio else None, crf=cfg.output.crf)
            writer.write(frames)
            secs["render"] += t1 - t0
            secs["compose"] += t2 - t1
            secs["encode"] += time.perf_counter() - t2
        t0 = time.perf_counter()
        writer.close()
        secs["encode"] += time.perf_counter() - t0
        report = evaluate(source, driving, out).report
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return PairResult(f"{source.stem}:{driving.stem}", info.n_frames, secs, peak, report)


def print_tables(results: list[PairResult]) -> None:
    width = max(16, *(len(r.name) + 2 for r in results))
    print(f"torch threads {torch.get_num_threads()}; frames/s per stage (seconds in brackets)")
    print(f"{'stage':<16}" + "".join(f"{r.name + f' ({r.frames} f)':>{width + 8}}" for r in results))
    for stage in (*STAGES, "total"):
        cells = []
        for r in results:
            s = sum(r.seconds.values()) if stage == "total" else r.seconds[stage]
            cells.append(f"{r.frames / max(s, 1e-9):>{width}.1f} ({s:5.1f})")
        print(f"{stage:<16}" + "".join(f"{c:>{width + 8}}" for c in cells))
    print(f"{'peak memory GB':<16}" + "".join(f"{r.peak_gb:>{width + 8}.2f}" for r in results))
    print()
    for label in metric_cells(results[0].report):
        print(f"{label:<16}" + "".join(f"{metric_cells(r.report)[label]:>{width + 8}}" for r in results))


def metric_cells(report: Report) -> dict[str, str]:
    """The evaluation measures of one pair as table cells, by row label."""
    fmt = lambda v: "undefined" if v is None else f"{v:.2f}"  # noqa: E731
    return {
        "APD rel (deg)": " / ".join(f"{x:.1f}" for x in report.apd_relative),
        "AED": f"{report.aed:.4f}",
        **{f"corr {n}": fmt(getattr(report.correlation, n)) for n in SERIES},
        "jitter out/drv": f"{report.jitter_output:.4f}/{report.jitter_driving:.4f}",
        "detection rate": f"{report.detection_rate:.1%}",
        "shape src/drv": f"{report.shape_to_source:.4f}/{report.shape_to_driving:.4f}",
        "identity": "unavailable" if report.identity_net is None else fmt(report.identity_output),
    }


def main(argv: list[str]) -> None:
    pairs = [p.split(":") for p in (argv or DEFAULT_PAIRS)]
    results = []
    for source, driving in pairs:
        paths = (SHARED / f"{source}.jpg", SHARED / f"{driving}.mp4")
        with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
            t0 = time.perf_counter()
            results.append(pool.submit(run_pair, *paths).result())
        print(f"{source}:{driving} done in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    print_tables(results)


if __name__ == "__main__":
    main(sys.argv[1:])
