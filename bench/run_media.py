"""Run every source x driving pair of ../shared/media and save a contact sheet of each (--compare) result.

    python bench/run_media.py OUT_DIR [--frames 4]

Prints seconds and frames/s per pair; the PNGs in OUT_DIR are for looking at the results.
"""
import argparse
import subprocess
import sys
import time
from pathlib import Path

from third_party_wrappers.video import open_video

MEDIA = Path(__file__).resolve().parents[1].parent / "shared" / "media"
SOURCES = ("s42.jpg", "s12.jpg", "s9.jpg", "obama.jpg")
DRIVING = ("d0.mp4", "d3.mp4", "d19.mp4")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--frames", type=int, default=4)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"{'source':<11}{'driving':<9}{'code':>5}{'seconds':>9}{'frames/s':>10}")
    for drv in DRIVING:
        with open_video(MEDIA / drv) as reader:
            n = reader.info.n_frames
        for src in SOURCES:
            video = args.out / f"{Path(src).stem}--{Path(drv).stem}.mp4"
            t0 = time.perf_counter()
            code = subprocess.call([sys.executable, "-m", "reenact.run", str(MEDIA / src), str(MEDIA / drv), "-o",
                                    str(video), "-q", "--compare", "--work-dir", str(args.out / "work")])
            secs = time.perf_counter() - t0
            print(f"{src:<11}{drv:<9}{code:>5}{secs:>9.1f}{n / secs:>10.1f}", flush=True)
            if code == 0:
                subprocess.check_call([sys.executable, str(Path(__file__).with_name("contact_sheet.py")), str(video),
                                       str(video.with_suffix(".png")), "--frames", str(args.frames), "--width", "900"])


if __name__ == "__main__":
    main()
