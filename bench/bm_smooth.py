"""Jitter reduction of the smoothing filters on the ../shared/media driving videos.

    python bench/bm_smooth.py [VIDEO ...]

Jitter = mean |second temporal difference| of the landmarks (px/frame^2) rebuilt from pose + expression;
lag = mean landmark distance (px) between the filtered and the raw tracks. Ratios are raw / filtered.
"""
import sys
from dataclasses import replace
from pathlib import Path

from reenact.expression import MeshOffsetModel, extract_motion
from reenact.pose import to_image
from reenact.evaluate import jitter
from reenact.smooth import SmoothConfig, smooth_motion
from reenact.track import track_frames
from third_party_wrappers.video import open_video

MEDIA = Path(__file__).resolve().parents[1].parent / "shared" / "media"


def main() -> None:
    videos = sys.argv[1:] or [str(MEDIA / n) for n in ("d0.mp4", "d3.mp4", "d19.mp4")]
    model = MeshOffsetModel()
    print(f"{'video':<9}{'filter':<10}{'jitter':>8}{'ratio':>7}{'lag px':>8}")
    for video in videos:
        with open_video(video) as reader:
            tracks = track_frames(reader.chunks(64), reader.info.n_frames, reader.info.fps, progress=False)
        motion = extract_motion(tracks, model)
        raw = jitter(tracks.landmarks)
        print(f"{Path(video).name:<9}{'raw':<10}{raw:>8.3f}{1:>7.2f}{0:>8.2f}")
        for method in ("one_euro", "savgol", "gaussian"):
            smooth = smooth_motion(motion, replace(SmoothConfig(), method=method))
            rebuilt = to_image(model.mesh(smooth.shape, smooth.expression), smooth.pose)
            lag = float((rebuilt - tracks.landmarks).norm(dim=-1).mean())
            j = jitter(rebuilt)
            print(f"{'':<9}{method:<10}{j:>8.3f}{raw / j:>7.2f}{lag:>8.2f}")


if __name__ == "__main__":
    main()
