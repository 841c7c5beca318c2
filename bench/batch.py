"""Batch throughput: rows/hour of a 3 x 3 matrix of the shared media through `python -m reenact.batch`, with the
shared work folder (each driving video tracked once) and without it (`--no-cache`: every row tracks anew).

    python bench/batch.py [--sources s42 s12 obama] [--driving d0 d3 d19] [--workers 1]
"""
import argparse
import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"


def run(manifest: Path, out: Path, workers: int, extra: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "reenact.batch", "--manifest", str(manifest), "--out", str(out),
                    "--workers", str(workers), *(["--", *extra] if extra else [])], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sources", nargs="+", default=["s42", "s12", "obama"])
    ap.add_argument("--driving", nargs="+", default=["d0", "d3", "d19"])
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        manifest = Path(tmp) / "rows.csv"
        with open(manifest, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["source", "driving"])
            for s in args.sources:
                for d in args.driving:
                    writer.writerow([MEDIA / f"{s}.jpg", MEDIA / f"{d}.mp4"])
        n = len(args.sources) * len(args.driving)
        shared = run(manifest, Path(tmp) / "shared", args.workers, [])
        alone = run(manifest, Path(tmp) / "alone", args.workers, ["--no-cache"])
    print(f"{n} rows, {args.workers} worker(s): shared tracking {shared:.0f} s ({3600 * n / shared:.0f} rows/h), "
          f"every row tracking {alone:.0f} s ({3600 * n / alone:.0f} rows/h); sharing is {alone / shared:.2f}x")


if __name__ == "__main__":
    main()
