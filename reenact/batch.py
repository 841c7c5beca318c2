"""`python -m reenact.batch`: many source x driving pairs, resumable, on this machine or on a Ray cluster.

    python -m reenact.batch --manifest rows.csv --out results/            # CSV or JSON lines
    python -m reenact.batch --sources portraits/ --driving clips/ --pairs all --out results/ [--evaluate]
    python -m reenact.batch --driving clips/ --pairs self --out results/  # each clip's first frame, --ref-frame 0
    python -m reenact.batch ... --ray [ADDRESS]                             # the same rows as Ray tasks

A manifest row names `source`, `driving`, optionally `output` (under --out) and `options` (command-line flags of
`python -m reenact.run`, e.g. "--ref-frame 0 --mode absolute" or "--tracks t.csv"). Each row is that command line
in a child process, with one work folder shared by all rows (`OUT/.reenact-work`), so a driving video is tracked
once and a source prepared once however many rows use them: the rows of each driving video wait for its first
row, whose tracks the others then read. Every finished row appends a line to `OUT/results.jsonl` (status done /
refused with the one-line reason / failed, seconds, frames/s, and with --evaluate the `reenact.evaluate`
figures); `OUT/results.csv` and a summary follow at the end. A re-run skips rows that are done and resumes the
others (a half-rendered row continues from its last finished segment); a bad row never stops the batch; outputs
are written whole or not at all. With --ray the rows are Ray tasks (2 CPUs each, a GPU for rows with
--generator) on the cluster at ADDRESS (default: a new local one); OUT must then be a folder every node sees.
"""
import argparse
import csv
import hashlib
import json
import logging
import os
import shlex
import statistics
import subprocess
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from reenact.errors import InputError, ReenactError
from reenact.structures import atomic_write
from third_party_wrappers.image import write_image
from third_party_wrappers.video import IMAGE_SUFFIXES, open_video

log = logging.getLogger("reenact")
VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".gif", ".m4v"}
EVALUATED = ("pose_error_ratio", "pose_std_ratio", "expression_correlation", "expression_std_ratio",
             "identity_to_source", "identity_to_driver")  # the observer's figures kept per row


@dataclass(frozen=True)
class Row:
    """One pair: source portrait, driving video, output path (under the batch's folder) and extra run flags."""

    source: str
    driving: str
    output: str
    options: tuple = ()

    @property
    def key(self) -> str:
        return self.output


@dataclass
class Result:
    output: str
    source: str
    driving: str
    status: str  # done, refused, failed
    reason: str = ""
    seconds: float = 0.0
    frames: int = 0
    fps: float = 0.0
    evaluation: dict = field(default_factory=dict)


def output_name(source: str, driving: str, options: tuple) -> str:
    """A row's deterministic output name: source--driving, with a digest of its options when it has any."""
    stem = f"{Path(source).stem}--{Path(driving).stem}"
    return f"{stem}-{hashlib.sha256(' '.join(options).encode()).hexdigest()[:8]}.mp4" if options else f"{stem}.mp4"


def read_manifest(path: Path) -> list[Row]:
    """Rows of a CSV (header: source, driving[, output][, options]) or JSON-lines manifest; paths relative to it."""
    if not path.is_file():
        raise InputError(f"{path}: no such manifest")
    if path.suffix.lower() in (".jsonl", ".json"):
        try:
            items = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        except ValueError as exc:
            raise InputError(f"{path}: not JSON lines ({exc})") from None
    else:
        with open(path, newline="") as fh:
            items = list(csv.DictReader(fh))
    rows = []
    for n, item in enumerate(items, 1):
        if not isinstance(item, dict) or not item.get("source") or not item.get("driving"):
            raise InputError(f"{path}: row {n} needs a source and a driving video")
        options = item.get("options") or ()
        options = tuple(shlex.split(options) if isinstance(options, str) else options)
        base = path.parent
        source, driving = (str(Path(p) if Path(p).is_absolute() else (base / p).resolve())
                           for p in (item["source"], item["driving"]))
        rows.append(Row(source, driving, item.get("output") or output_name(source, driving, options), options))
    return rows


def paired_rows(sources: Path | None, driving: Path, pairs: str, out: Path) -> list[Row]:
    """Rows of every source x driving video (`all`), of sources and videos in name order side by side (`zip`), or
    of each video's own first frame driving it with --ref-frame 0 (`self`, the self-reenactment protocol)."""
    def listed(folder: Path, suffixes) -> list[Path]:
        if not folder.is_dir():
            raise InputError(f"{folder}: no such folder")
        return sorted(p for p in folder.iterdir() if p.suffix.lower() in suffixes)

    videos = listed(driving, VIDEO_SUFFIXES)
    if pairs == "self":
        frames = out / "first-frames"
        frames.mkdir(parents=True, exist_ok=True)
        rows = []
        for video in videos:
            first = frames / f"{video.stem}.png"
            if not first.exists():
                with open_video(video) as reader:
                    write_image(first, reader.read(np.array([0]))[0])
            rows.append(Row(str(first), str(video), output_name(str(first), str(video), ()), ("--ref-frame", "0")))
        return rows
    if sources is None:
        raise InputError("--pairs all and zip need --sources")
    images = listed(sources, IMAGE_SUFFIXES)
    combos = zip(images, videos) if pairs == "zip" else ((s, d) for s in images for d in videos)
    return [Row(str(s), str(d), output_name(str(s), str(d), ())) for s, d in combos]


def run_row(row: Row, out: str, evaluate: bool, device: str | None = None) -> dict:
    """One row through `python -m reenact.run` (and `python -m reenact.evaluate`): its Result as a dict."""
    target = Path(out) / row.output
    command = [sys.executable, "-m", "reenact.run", row.source, row.driving, "-o", str(target), "-q",
               "--work-dir", str(Path(out) / ".reenact-work"), *row.options, *(["--device", device] if device else [])]
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    result = Result(row.output, row.source, row.driving, "done", seconds=round(seconds, 2))
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or ["no message"]
        result.status = "refused" if proc.returncode == 2 else "failed"
        result.reason = lines[-1].removeprefix("reenact: ")
        return asdict(result)
    with open_video(target) as video:
        result.frames = video.info.n_frames
    result.fps = round(result.frames / seconds, 2)
    if evaluate:
        report = target.with_suffix(".eval.json")
        proc = subprocess.run([sys.executable, "-m", "reenact.evaluate", "--source", row.source, "--driving",
                               row.driving, "--output", str(target), "--json", str(report)], capture_output=True,
                              text=True)
        if proc.returncode == 0:
            observer = json.loads(report.read_text()).get("observer") or {}
            result.evaluation = {k: observer[k] for k in EVALUATED if k in observer}
    return asdict(result)


def done_rows(results: Path) -> dict[str, dict]:
    """Finished rows of an earlier run (the last line per output wins; a line cut by an interruption is skipped)."""
    finished = {}
    if results.exists():
        for line in results.read_text().splitlines():
            try:
                item = json.loads(line)
            except ValueError:
                continue
            finished[item["output"]] = item
    return finished


def _finished(result: dict | None, output: Path) -> bool:
    """Whether a row needs no new run: done (its output is there) or refused (it would be again); a failed row
    runs again."""
    return result is not None and (result["status"] == "refused" or result["status"] == "done" and output.exists())


def waves(rows: list[Row]) -> tuple[list[Row], dict[str, list[Row]]]:
    """The first row of each driving video (they run first, in parallel), and the rest per driving video (each
    waits for its video's first row, then reads its tracks from the shared work folder)."""
    first, rest = {}, {}
    for row in rows:
        if row.driving in first:
            rest.setdefault(row.driving, []).append(row)
        else:
            first[row.driving] = row
    return list(first.values()), rest


def is_gpu_row(row: Row) -> bool:
    return "--generator" in row.options or any(o.startswith("--gan.generator") for o in row.options)


def run_local(rows: list[Row], out: Path, workers: int, evaluate: bool, record) -> None:
    """Rows in `workers` threads, each driving a child process; rows with a generator one per GPU (on CUDA)."""
    import torch

    gpus = torch.cuda.device_count()
    first, rest = waves(rows)
    busy_gpus: set[int] = set()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        queue, running = list(first), {}

        def submit(row: Row) -> bool:
            device = None
            if is_gpu_row(row) and gpus:
                free = [i for i in range(gpus) if i not in busy_gpus]
                if not free:
                    return False
                device = f"cuda:{free[0]}"
                busy_gpus.add(free[0])
            running[pool.submit(run_row, row, str(out), evaluate, device)] = (row, device)
            log.info("%s: started%s", row.output, f" on {device}" if device else "")
            return True

        while queue or running:
            for row in list(queue):
                if len(running) < workers and submit(row):
                    queue.remove(row)
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                row, device = running.pop(future)
                if device:
                    busy_gpus.discard(int(device.split(":")[1]))
                record(future.result())
                queue += rest.pop(row.driving, [])


def run_ray(rows: list[Row], out: Path, address: str | None, evaluate: bool, record) -> None:
    """The same rows as Ray tasks: 2 CPUs each, and a GPU for rows with a generator."""
    import ray

    if not ray.is_initialized():
        ray.init(address=address or None, include_dashboard=False, log_to_driver=False)
    task = ray.remote(num_cpus=2)(run_row)
    first, rest = waves(rows)
    pending = {}

    def submit(row: Row) -> None:
        options = {"num_gpus": 1} if is_gpu_row(row) else {}
        pending[task.options(**options).remote(row, str(out), evaluate, "cuda" if options else None)] = row
        log.info("%s: submitted to Ray%s", row.output, " (1 GPU)" if options else "")

    for row in first:
        submit(row)
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        row = pending.pop(ready[0])
        record(ray.get(ready[0]))
        for later in rest.pop(row.driving, []):
            submit(later)


def write_table(results: Path, rows: list[Row]) -> list[dict]:
    """results.csv of the manifest's rows (their last result each), written whole; returns those results."""
    finished = done_rows(results)
    table = [finished[row.output] for row in rows if row.output in finished]
    columns = [f for f in Result.__dataclass_fields__]

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, columns)
            writer.writeheader()
            for item in table:
                writer.writerow({**item, "evaluation": json.dumps(item.get("evaluation") or {})})

    atomic_write(results.with_suffix(".csv"), write)
    return table


def summary(table: list[dict]) -> str:
    counts = {s: sum(r["status"] == s for r in table) for s in ("done", "refused", "failed")}
    done = [r for r in table if r["status"] == "done"]
    med = (lambda k: statistics.median(r[k] for r in done)) if done else (lambda k: 0.0)
    return (f"{counts['done']} done, {counts['refused']} refused, {counts['failed']} failed; median "
            f"{med('seconds'):.1f} s and {med('fps'):.1f} frames/s a row")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m reenact.batch", description=__doc__.split("\n\n")[0])
    p.add_argument("--manifest", type=Path, help="CSV or JSON-lines rows: source, driving[, output][, options]")
    p.add_argument("--sources", type=Path, help="folder of portraits (with --driving and --pairs)")
    p.add_argument("--driving", type=Path, help="folder of driving videos")
    p.add_argument("--pairs", choices=("all", "zip", "self"), default="all")
    p.add_argument("--out", type=Path, required=True, help="folder of the outputs and the results table")
    p.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) // 2),
                   help="rows at once on this machine (default: half the cores; each row uses two)")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run the rows as Ray tasks on the cluster at ADDRESS (default: a new local one)")
    p.add_argument("--evaluate", action="store_true", help="also run python -m reenact.evaluate on every output")
    p.add_argument("options", nargs=argparse.REMAINDER, help="after --: python -m reenact.run flags for every row")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="reenact: %(message)s")
    try:
        if args.manifest:
            rows = read_manifest(args.manifest)
        elif args.driving:
            rows = paired_rows(args.sources, args.driving, args.pairs, args.out)
        else:
            raise InputError("give --manifest, or --driving (with --sources for --pairs all or zip)")
        common = tuple(o for o in args.options if o != "--")
        if common:
            rows = [Row(r.source, r.driving, output_name(r.source, r.driving, r.options + common), r.options + common)
                    if not args.manifest else Row(r.source, r.driving, r.output, r.options + common) for r in rows]
        if len({r.output for r in rows}) != len(rows):
            raise InputError("two rows would write the same output; give them outputs of their own")
    except ReenactError as exc:
        print(f"reenact: {exc}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    results = args.out / "results.jsonl"
    finished = done_rows(results)
    todo = [r for r in rows if not _finished(finished.get(r.output), args.out / r.output)]
    log.info("%d rows: %d finished before, %d to run", len(rows), len(rows) - len(todo), len(todo))
    bar = tqdm(total=len(todo), desc="rows", unit="row")

    def record(item: dict) -> None:
        with open(results, "a") as fh:
            fh.write(json.dumps(item) + "\n")
        log.info("%s: %s%s (%.1f s)", item["output"], item["status"], f": {item['reason']}" if item["reason"]
                 else "", item["seconds"])
        bar.update(1)

    try:
        if args.ray is not None:
            run_ray(todo, args.out, args.ray, args.evaluate, record)
        else:
            run_local(todo, args.out, args.workers, args.evaluate, record)
    except KeyboardInterrupt:
        print("reenact: interrupted; finished rows are recorded, a re-run resumes the others", file=sys.stderr)
        return 130
    finally:
        bar.close()
    table = write_table(results, rows)
    print(summary(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
