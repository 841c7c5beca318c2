"""The demo's inputs, shipped with the package: a public-domain portrait and a driving motion made here.

`data/demo_portrait.jpg` is Grace Hopper's official US Navy portrait (1984; a work of the US government, in the
public domain; the copy matplotlib ships as sample data). `data/demo_motion.npz` is the motion `demo_motion()`
writes: six seconds of head turns and nods, a smile, blinks and speech-like mouth motion, composed from this
project's expression presets (`reenact.presets`) for the default face model, unplaced (no driving video), so
`python -m reenact.run --demo` runs on a fresh machine with no inputs at all.

    python -m reenact.demo      # rebuild data/demo_motion.npz from the curves below
"""
from __future__ import annotations

import math
from importlib import resources
from pathlib import Path

import torch

from reenact.canonical import load_canonical
from reenact.geometry import angles_to_matrix
from reenact.presets import mesh_offsets
from reenact.structures import Expression, HeadPose, Motion
from reenact.transfer import MESH_OFFSET

FPS = 25.0
SECONDS = 6.0


def demo_portrait() -> Path:
    """The shipped portrait's path."""
    return Path(str(resources.files("reenact") / "data" / "demo_portrait.jpg"))


def demo_motion_path() -> Path:
    """The shipped motion's path."""
    return Path(str(resources.files("reenact") / "data" / "demo_motion.npz"))


def _bump(t: torch.Tensor, centre: float, width: float) -> torch.Tensor:
    """A smooth bump of height 1 at `centre` seconds, `width` seconds wide (raised cosine)."""
    x = ((t - centre) / width * 2).clamp(-1, 1)
    return 0.5 * (1 + torch.cos(math.pi * x))


def demo_motion() -> Motion:
    """The demo's driving motion: yaw sweeps +-22 deg and a nod of 12 deg, a smile in the middle, two blinks, and
    syllable-rate mouth opening (about 4 Hz under a phrase envelope) in the first and last thirds."""
    t = torch.arange(int(SECONDS * FPS)) / FPS
    yaw = 22 * torch.sin(2 * math.pi * t / 4.0) * _bump(t, 3.0, 6.0).sqrt()
    pitch = 12 * torch.sin(2 * math.pi * t / 3.0) * _bump(t, 3.5, 5.0)
    roll = 5 * torch.sin(2 * math.pi * t / 6.0)
    rotation = angles_to_matrix(torch.stack([yaw, pitch, roll], 1))
    smile = _bump(t, 3.0, 2.0)
    blink = _bump(t, 1.4, 0.25) + _bump(t, 4.6, 0.25)
    phrase = _bump(t, 1.0, 1.8) + _bump(t, 5.0, 1.8)
    syllables = 0.5 * (1 - torch.cos(2 * math.pi * 4.2 * t + 2 * torch.sin(2 * math.pi * 0.7 * t)))
    speech = 0.6 * phrase * syllables
    offsets = (smile[:, None, None] * mesh_offsets("smile") + blink[:, None, None] * mesh_offsets("blink")
               + speech[:, None, None] * mesh_offsets("open_mouth"))
    n = len(t)
    pose = HeadPose(rotation, torch.zeros(n, 3), torch.ones(n))  # unplaced: no driving video
    expression = Expression(offsets.reshape(n, -1), MESH_OFFSET, [])
    return Motion(pose, expression, load_canonical().shape, torch.ones(n, dtype=torch.bool), FPS, 0)


if __name__ == "__main__":
    demo_motion().save(Path(__file__).parent / "data" / "demo_motion.npz")
    print("wrote", Path(__file__).parent / "data" / "demo_motion.npz")
