"""Input stage: the source image normalised for processing, and the driving stream read ahead.

Decoding runs in a background thread while the consumer (tracking, rendering) works, which
roughly halves the wall time of the track stage on two cores.
"""
from __future__ import annotations

import queue
import threading
from dataclasses import replace
from typing import Iterator, TypeVar

import numpy as np
import torch

from reenact.errors import InputError
from third_party_wrappers.image import read_image
from third_party_wrappers.video import VideoInfo

T = TypeVar("T")


def frames_to_tensor(frames: np.ndarray) -> torch.Tensor:
    """uint8 RGB frames [N, H, W, 3] -> float [N, 3, H, W] in [0, 1] (read-only arrays are copied)."""
    return torch.from_numpy(frames if frames.flags.writeable else frames.copy()).permute(0, 3, 1, 2).float().div_(255)


def tensor_to_frames(images: torch.Tensor) -> np.ndarray:
    """float [N, 3, H, W] in [0, 1] (any device) -> uint8 RGB frames [N, H, W, 3], rounded."""
    return images.clamp(0, 1).mul_(255).add_(0.5).byte().permute(0, 2, 3, 1).cpu().numpy()


def fit_max_side(rgb: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """Downscale (area) so max(H, W) <= max_side; returns the image and the factor original/new."""
    h, w = rgb.shape[:2]
    if max(h, w) <= max_side:
        return rgb, 1.0
    size = (round(h * max_side / max(h, w)), round(w * max_side / max(h, w)))
    small = torch.nn.functional.interpolate(torch.from_numpy(rgb).permute(2, 0, 1)[None].float(), size=size,
                                            mode="area")
    return small[0].permute(1, 2, 0).round().clamp(0, 255).byte().numpy(), w / size[1]


def load_source(path, max_side: int = 1280) -> np.ndarray:
    """Source portrait as uint8 [H, W, 3] RGB, EXIF-upright, downscaled so max(H, W) <= max_side."""
    return fit_max_side(read_image(path), max_side)[0]


def prefetch(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """Iterate `items` in a background thread, up to `depth` ahead; exceptions re-raise in the consumer."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def work() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put((done, None))
        except BaseException as exc:  # handed to the consumer thread
            q.put((done, exc))

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        while True:
            item, exc = q.get()
            if exc is not None:
                raise exc
            if item is done:
                return
            yield item
    finally:
        stop.set()


def frame_chunks(reader, size: int, start: int = 0, end: int | None = None):
    """(first frame, count, frames uint8 [count, H, W, 3] or None for a reader without frames) per chunk of `size`
    frames of [start, end), decoded ahead in the background."""
    last = reader.info.n_frames if end is None else end
    for first, frames in prefetch(reader.chunks(size, start, end)):
        yield first, min(size, last - first) if frames is None else len(frames), frames


class FrameRange:
    """Frames [start, end) of a video reader, re-indexed from 0, behind the same interface (info, chunks, read)."""

    def __init__(self, reader, start: int, end: int | None):
        n = reader.info.n_frames
        end = n if end is None else end
        if not 0 <= start < end <= n:
            raise InputError(f"{reader.info.path}: frame range {start}:{end} is outside its {n} frames")
        self.reader, self.start = reader, start
        self.info = replace(reader.info, n_frames=end - start)
        times = getattr(reader, "times", None)
        self.times = None if times is None else times[start:end + 1] - times[start]

    def chunks(self, size: int = 64, start: int = 0, end: int | None = None):
        end = self.info.n_frames if end is None else end
        for first, frames in self.reader.chunks(size, start + self.start, end + self.start):
            yield first - self.start, frames

    def read(self, indices) -> np.ndarray:
        return self.reader.read(np.asarray(indices) + self.start)

    def close(self) -> None:
        self.reader.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class MotionClock:
    """A stand-in for a driving video when only its motion is known: chunks yield (start, None), or with a driving
    photo `still` (uint8 [H, W, 3], a still's driver) that photo for every frame."""

    def __init__(self, n_frames: int, fps: float, still: np.ndarray | None = None):
        self.info = VideoInfo("", fps, n_frames, 0 if still is None else still.shape[0],
                              0 if still is None else still.shape[1], False, "motion")
        self.still = still

    def read(self, idx) -> np.ndarray | None:
        return None if self.still is None else np.repeat(self.still[None], len(idx), 0)

    def chunks(self, size: int = 64, start: int = 0, end: int | None = None):
        end = self.info.n_frames if end is None else end
        for first in range(start, end, size):
            yield first, self.read(range(first, min(first + size, end)))

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass
