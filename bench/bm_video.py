"""Decode and encode throughput of the media layer, as frames/s and as multiples of real time.

Encoding uses the video's own frames (resized to 512x512): real content, not incompressible noise.

Usage: python bench/bm_video.py [VIDEO]  (default: shared/media/d3.mp4 beside the checkout)
"""

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from third_party_wrappers.video import VideoWriter, _PyAVReader, open_video  # noqa: E402

DEFAULT = Path(__file__).resolve().parents[1].parent / "shared" / "media" / "d3.mp4"


def _rate(label: str, n: int, seconds: float, fps: float) -> None:
    print(f"{label:<34} {n / seconds:8.1f} frames/s  {n / seconds / fps:6.1f}x real time ({fps:g} fps)")


def _decode(reader, size: int = 64) -> int:
    return sum(len(frames) for _, frames in reader.chunks(size=size))


def main(path: Path) -> None:
    t = time.perf_counter()
    with open_video(path) as r:
        print(f"{path.name}: open+probe {1000 * (time.perf_counter() - t):.1f} ms, {r.info}")
        t = time.perf_counter()
        n = _decode(r)
        _rate(f"decode {r.info.backend} chunks(64)", n, time.perf_counter() - t, r.info.fps)
        info = r.info
    pyav = _PyAVReader(info, 0)
    t = time.perf_counter()
    n = _decode(pyav)
    _rate("decode pyav chunks(64)", n, time.perf_counter() - t, info.fps)

    with open_video(path) as r:
        frames = np.stack([_resize512(f) for f in r.read(range(min(128, info.n_frames)))])
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        with VideoWriter(Path(tmp) / "bench.mp4", info.fps, 512, 512, audio_from=path) as w:
            w.write(frames)
        _rate("encode libx264 crf18 512x512 +audio", len(frames), time.perf_counter() - t, info.fps)


def _resize512(rgb: np.ndarray) -> np.ndarray:
    """Nearest-neighbour resize to 512x512, so the encode figure is for the model's output size."""
    ys = np.arange(512) * rgb.shape[0] // 512
    xs = np.arange(512) * rgb.shape[1] // 512
    return rgb[ys[:, None], xs[None, :]]


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT)
