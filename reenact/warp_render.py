"""The default renderer of a scene: the mesh-driven warp of `reenact.warp` over the driving video.

`make_renderer` builds the warp for the scene's source crop (or another view of it, the 3D GAN's); `render_range`
draws target frames; `WarpSceneRenderer` streams the driving frames in chunks, reading only the window around the
driver's face that the mouth fill needs.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from reenact.compose import OutputConfig, landmark_panel
from reenact.crop import apply_affine, warp_affine
from reenact.inputs import frame_chunks, frames_to_tensor
from reenact.scene import Scene, pose_in_crop
from reenact.structures import Crop, Rendered
from reenact.warp import DenseMeshMap, LandmarkMeshMap, WarpConfig, WarpMap, WarpRenderer

FACE_MARGIN = 0.5  # the driving frame around the driver's landmark box that the mouth fill may read (of its size)


def make_renderer(scene: Scene, cfg: WarpConfig, device: torch.device, view: Crop | None = None) -> WarpRenderer:
    """The default renderer for a scene's source crop, or for `view`, a crop of the scene crop's pixels (the 3D
    GAN's): its mesh map goes through the dense face when the scene has one."""
    landmarks, dense = scene.source_meshes()
    backdrop, inside = scene.cropped.to(device), scene.inside.to(device)
    pose = pose_in_crop(scene.source.pose, scene.crop)
    if view is not None:
        backdrop = backdrop.cropped(view)
        inside = warp_affine(inside[None], view.image_from_crop[None].to(device), (view.size, view.size))[0]
        pose = pose_in_crop(pose, view)
        landmarks, dense = (None if x is None else apply_affine(view.crop_from_image, x) for x in (landmarks, dense))
    landmarks = landmarks.to(device)
    mesh_map = LandmarkMeshMap(landmarks) if dense is None else \
        DenseMeshMap(landmarks, scene.dense.faces, dense.to(device))
    return WarpRenderer(backdrop, mesh_map, pose, inside, cfg)


def render_range(renderer: WarpRenderer, scene: Scene, start: int, n: int, device: torch.device,
                 driving: torch.Tensor | None = None, images: bool = True,
                 driving_origin: tuple[int, int] = (0, 0)) -> Rendered | WarpMap:
    """Target frames [start, start + n) of a scene: rendered crops, or (`images` False) the warp maps that
    `paste_frames` resamples the full source frame through; `driving` frames [n, 3, Hd, Wd] (or a window of them
    whose top-left pixel is `driving_origin`, x y) feed the mouth fill."""
    sl = slice(start, start + n)
    pose = scene.target_pose.select(sl, device)
    target, dense = scene.target_meshes(sl)
    placed = None
    if scene.driving_verts is not None:
        placed = (scene.driving_verts[sl] - torch.tensor([*driving_origin, 0.0])).to(device)
    readable = None if scene.readable is None else scene.readable[sl]
    draw = renderer.render if images else renderer.warp_map
    return draw(start, target.to(device), pose, driving, placed, None if dense is None else dense.to(device), readable)


def face_window(frames: np.ndarray, verts: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
    """Driving frames uint8 [N, H, W, 3] cut to the box of their landmarks [N, 478, 3] (driving px) grown by
    FACE_MARGIN of its size on each side, as float [N, 3, h, w], and the cut's top-left pixel (x, y): all the
    mouth fill reads, without converting whole frames."""
    h, w = frames.shape[1:3]
    lo, hi = verts[..., :2].amin((0, 1)), verts[..., :2].amax((0, 1))
    grow = FACE_MARGIN * (hi - lo)
    (x0, y0), (x1, y1) = (lo - grow).floor().int().tolist(), (hi + grow).ceil().int().tolist()
    x0, y0, x1, y1 = max(0, min(x0, w - 1)), max(0, min(y0, h - 1)), max(1, min(x1, w)), max(1, min(y1, h))
    x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)
    return frames_to_tensor(frames[:, y0:y1, x0:x1]), (x0, y0)


CHUNK_PIXELS = 1280 * 720  # frames up to this size (a portrait at the size cap) are rendered `chunk` at a time


def chunk_size(scene: Scene, cfg: OutputConfig) -> int:
    """Frames per chunk: `cfg.chunk` for frames up to CHUNK_PIXELS, proportionally fewer for larger ones (bounded
    memory). Fewer frames per chunk cost time: each chunk pays per-call overheads (at 910 x 1137 px, two-frame chunks
    took 43 ms a frame against 33 ms for eight-frame ones, for 0.24 GB more peak memory)."""
    pixels = max(scene.crop.size ** 2, scene.source_full.shape[-1] * scene.source_full.shape[-2])
    return max(1, min(cfg.chunk, cfg.chunk * CHUNK_PIXELS // pixels))


PANEL_FACE = 1.7  # the driving panel of a motion without video spans this many times the source face's size


def motion_panel(scene: Scene, first: int, n: int) -> torch.Tensor:
    """The driving panel [n, 3, S, S] of target frames [first, first + n) of a motion without video: the target
    landmarks as dots, framed on the source face (PANEL_FACE times its size)."""
    lo, hi = scene.source_verts[:, :2].amin(0), scene.source_verts[:, :2].amax(0)
    side = float((hi - lo).max()) * PANEL_FACE
    points = (scene.target_verts[first:first + n, :, :2] - (lo + hi) / 2 + side / 2) * (scene.crop.size / side)
    return landmark_panel(points, scene.crop.size, dot=max(1, scene.crop.size // 256))


def driving_panel(scene: Scene, frames: np.ndarray | None, first: int, n: int, device: torch.device) -> torch.Tensor:
    """The driving panel of a `--compare` output for target frames [first, first + n): the driving frames uint8
    [n, H, W, 3] as float [n, 3, H, W], or, for a motion without video (frames None), its landmarks."""
    panel = motion_panel(scene, first, n) if frames is None else frames_to_tensor(frames)
    return panel.to(device)


class WarpSceneRenderer:
    """The default renderer of a scene, prepared once per run: the warp maps of driving frames [start, end) per
    chunk, which `reenact.pipeline.compose_frames` turns into output frames."""

    def __init__(self, scene: Scene, reader, cfg: WarpConfig, output: OutputConfig, device: torch.device):
        self.scene, self.reader, self.output, self.device = scene, reader, output, device
        self.renderer = make_renderer(scene, cfg, device)
        self.size = chunk_size(scene, output)

    def chunks(self, start: int = 0,
               end: int | None = None) -> Iterator[tuple[torch.Tensor | None, Rendered | WarpMap]]:
        """Per chunk: (driving frames [N, 3, Hd, Wd] for a side-by-side output, else None; warp maps, or rendered
        crops for a crop-only output)."""
        scene, device = self.scene, self.device
        for first, n, frames in frame_chunks(self.reader, self.size, start, end):
            drv = driving_panel(scene, frames, first, n, device) if self.output.compare else None
            window, origin = None, (0, 0)  # None: a motion without video, or a driver not placed in its frames
            if frames is not None and scene.driving_verts is not None:
                window, origin = face_window(frames, scene.driving_verts[first:first + n])
                window = window.to(device)
            yield drv, render_range(self.renderer, scene, first, n, device, window, self.output.crop_only, origin)
