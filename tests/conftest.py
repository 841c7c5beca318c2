"""Shared fixtures: the ../shared folder (tests skip without it), short real clips, a quiet CLI runner."""
from __future__ import annotations

from pathlib import Path

import pytest

from third_party_wrappers.video import VideoWriter, open_video

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session")
def shared() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared (test media) is not present")
    return SHARED


@pytest.fixture(scope="session")
def media(shared) -> Path:
    return shared / "media"


def cut_clip(src: Path, dst: Path, start: int, n: int, size: int | None = None) -> Path:
    """The frames [start, start + n) of a real video, optionally resized, with its audio."""
    import torch.nn.functional as F
    import torch

    with open_video(src) as reader:
        frames = reader.read(list(range(start, start + n)))
        fps, audio = reader.info.fps, src if reader.info.has_audio else None
    if size:
        t = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
        frames = F.interpolate(t, size=(size, size), mode="area").round().byte().permute(0, 2, 3, 1).numpy()
    with VideoWriter(dst, fps, frames.shape[2], frames.shape[1], audio_from=audio) as writer:
        writer.write(frames)
    return dst


@pytest.fixture(scope="session")
def talking_clip(media, tmp_path_factory) -> Path:
    """48 frames of d3.mp4 (talking, turning ~30 deg, nodding; AAC audio) at 256x256."""
    return cut_clip(media / "d3.mp4", tmp_path_factory.mktemp("clips") / "d3_short.mp4", 250, 48, 256)


@pytest.fixture(scope="session")
def expressive_clip(media, tmp_path_factory) -> Path:
    """All 78 frames of d0.mp4 (strong expressions, head turns, no audio) at 256x256."""
    return cut_clip(media / "d0.mp4", tmp_path_factory.mktemp("clips") / "d0_small.mp4", 0, 78, 256)
