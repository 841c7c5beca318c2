"""Does a generator agree with the GAN path's crop and cameras? Its own renders, tracked like a source.

The GAN path assumes two facts of EG3D that only real weights can confirm: a face rendered at the camera of a
head rotation R (`label_from_rotation`, the official LookAt convention about the pivot (0, 0, 0.2)) fills the
render as `eg3d_crop` frames a portrait, and our pose stage reads R back from it. This renders faces of random
latents at such cameras, tracks them with the pipeline's tracker and reports per render where `eg3d_crop` of
the tracked face puts the render's centre (fractions of the side; 0 for an agreeing generator), its scale
(1 for an agreeing generator) and the tracked head angles (the asked ones). `bench/gan_framing.py` prints it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from reenact.crop import apply_affine, eg3d_crop
from reenact.eg3d import frontal_label
from reenact.eg3d.camera import label_from_rotation
from reenact.errors import InputError
from reenact.geometry import angles_to_matrix
from reenact.inputs import tensor_to_frames
from reenact.invert import render
from reenact.pose import estimate_pose
from reenact.track import track_image


@dataclass(frozen=True)
class Framing:
    """Per (seed, asked angle) [N, A]: NaN where no face was tracked in the render."""

    asked: torch.Tensor  # [A, 2] yaw, pitch in degrees (head angles, `reenact.geometry.head_angles`)
    offset: torch.Tensor  # [N, A, 2] the render's centre in the face's EG3D crop, minus the crop centre, / side
    scale: torch.Tensor  # [N, A] the EG3D crop's px per render px
    tracked: torch.Tensor  # [N, A, 3] tracked yaw, pitch, roll in degrees


@torch.no_grad()
def framing(G, asked: torch.Tensor, seeds: list[int], psi: float = 0.7) -> Framing:
    """Render seeds' faces (truncation psi, mapped with the frontal camera) at the cameras of the head angles
    `asked` [A, 2] (yaw, pitch, degrees) and measure how the EG3D crop of each tracked face sits on the render."""
    device = next(G.parameters()).device
    s = G.img_resolution
    rotation = angles_to_matrix(torch.cat([asked.float(), torch.zeros(len(asked), 1)], 1))
    cameras = label_from_rotation(rotation).to(device)
    offset = torch.full((len(seeds), len(asked), 2), float("nan"))
    scale = torch.full((len(seeds), len(asked)), float("nan"))
    tracked = torch.full((len(seeds), len(asked), 3), float("nan"))
    centre = torch.tensor([[s / 2, s / 2]])
    for i, seed in enumerate(seeds):
        z = torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(seed)).to(device)
        w = G.mapping(z, frontal_label(1, device=device), truncation_psi=psi)
        images = render(G, w.expand(len(asked), -1, -1), cameras)
        for j, frame in enumerate(tensor_to_frames(images)):
            try:
                tracks = track_image(np.ascontiguousarray(frame))
            except InputError:
                continue
            crop = eg3d_crop(tracks.landmarks[0], s).crop_from_image
            offset[i, j] = (apply_affine(crop, centre)[0] - s / 2) / s
            scale[i, j] = crop[0, 0]
            tracked[i, j] = estimate_pose(tracks).angles()[0]
    return Framing(asked, offset, scale, tracked)
