"""The 3D GAN renderer (`--generator`): EG3D inversion of the expression-edited source, then rendering at the
driving pose (paper_pipeline.md §1.4-1.7).

1. Targets: the warp renderer draws each keyframe's TARGET expression at the SOURCE pose (the paper's
   "expression-edited source image"), with face and mouth-interior masks, in an EG3D-style crop.
2. Projection (reenact.invert): masked W projection at the source camera, mouth interior excluded;
   optionally (SPI) the mirrored source as a pseudo view at the mirrored camera, except where the source
   disagrees with its own mirror image.
3. Mouth inpainting + pivotal tuning (reenact.tune): the hole of each target is filled from its GAN render,
   then one generator is tuned on all (w_i, target_i).
4. Final render: w_i at the driving frame's (smoothed, transferred) camera, composited over w_0 at the same
   camera (frame-0 hair and background) with the frame-0 face region lifted to 3D by the rendered depth and
   projected into that camera; then placed into the run's crop with the head's 2D translation and scale.

Crop and cameras. The generator sees EG3D's own FFHQ crop (`reenact.crop.eg3d_crop`: the 5-point template fit
of its preprocessing), which frames the face higher and a little tighter than the FFHQ recipe of the run's crop.
Cameras are `HeadPose.camera_labels()` of the poses in this crop (rotation only: the crop centres the template's
origin, which the training cameras look at); the mapping is conditioned on the frontal camera, as in the official
demos. The cameras look at EG3D's pivot (0, 0, 0.2), where its FFHQ labels' optical axes cross the head's
symmetry plane (e.g. (0, -0.008, 0.198) for img00000000, yaw -19.5 degrees). Whether a checkpoint's renders
agree with this crop and these cameras, `bench/gan_framing.py` measures. Everything optimised lives in the run's
work folder.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, Optional

import kornia.filters as kf
import torch
import torch.nn.functional as F
from tqdm import tqdm

from reenact.cache import WorkDir
from reenact.compose import feather_mask
from reenact.crop import apply_affine, eg3d_crop, warp_affine
from reenact.eg3d import frontal_label, load_generator, save_generator
from reenact.eg3d.volume import sample_rays
from reenact.inputs import frame_chunks, frames_to_tensor
from reenact.invert import (interpolate_latents, keyframe_indices, project_sequence, render, w_stats)
from reenact.losses import ImageLoss, load_vgg16
from reenact.compose import OutputConfig
from reenact.scene import Scene, pose_in_crop
from reenact.structures import Crop, HeadPose, Latents, Rendered, atomic_write
from reenact.symmetry import SPI_MIN_YAW, filtered_masks, mirrored_views, spi_weight
from reenact.tune import inpaint_mouth, tune_generator
from reenact.warp import WarpConfig
from reenact.warp_render import driving_panel, make_renderer

log = logging.getLogger("reenact")
LATENTS_VERSION = 1  # part of the cached latents' key: bump when the projection changes its output
TUNED_VERSION = 1  # part of the tuned generator's key: bump when tuning changes its output



@dataclass(frozen=True)
class GanConfig:
    generator: Optional[str] = None  # EG3D checkpoint (.pkl, or state dict + config.json): render through the 3D GAN
    steps_first: int = 2000  # paper: W projection steps for frame 0, from w_avg
    steps_per_frame: int = 100  # paper: projection steps of each later keyframe, warm-started
    tune_steps: int = 2000  # paper: pivotal-tuning steps of the shared generator
    keyframe_every: int = 1  # project every k-th frame and interpolate w between keyframes
    w_plus: bool = False  # optimise one w per layer (W+) instead of the paper's W
    symmetry: bool = False  # SPI: the mirrored source as a pseudo view at the mirrored camera (frame 0)
    symmetry_filter: bool = True  # SPI: no pseudo view where the source disagrees with its own mirror image
    lr: float = 0.025  # paper: peak projection learning rate
    tune_lr: float = 1e-3  # paper: peak tuning learning rate
    noise_weight: float = 1e5  # paper: weight of the noise autocorrelation penalty
    w_avg_samples: int = 600  # paper: z samples for w_avg and w_std
    ssim_weight: float = 1.0  # weight of the SSIM term (beside pixel L2)
    perceptual: Optional[str] = None  # VGG16 state dict (torchvision layout): adds the perceptual loss
    locality: float = 0.0  # PTI locality regulariser weight (PTI: 0.1; the paper: off)
    save_every: int = 10  # save latents every k keyframes (resume)
    checkpoint_every: int = 100  # save a tuning checkpoint every N steps (resume)
    seed: int = 1989  # paper: seed of sampling and frame order


@dataclass(frozen=True)
class GanGeometry:
    """The source and targets in the GAN crop (px of a G.img_resolution square) and their EG3D cameras."""

    crop: Crop  # GAN crop of the source image
    gan_from_scene: torch.Tensor  # [2, 3] scene-crop px -> GAN-crop px
    source_pose: HeadPose  # T = 1
    target_pose: HeadPose  # [T]
    source_camera: torch.Tensor  # [1, 25]
    driving_cameras: torch.Tensor  # [T, 25]


def compose_affine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """2x3 affines [..., 2, 3]: a after b."""
    return torch.cat([a[..., :2] @ b[..., :2], a[..., :2] @ b[..., 2:] + a[..., 2:]], -1)


def gan_geometry(scene: Scene, size: int) -> GanGeometry:
    """GAN crop, poses and cameras."""
    landmarks = apply_affine(scene.crop.image_from_crop, scene.source_verts)
    crop = eg3d_crop(landmarks, size)
    gan_from_scene = compose_affine(crop.crop_from_image, scene.crop.image_from_crop)
    source = pose_in_crop(scene.source.pose, crop)
    target = pose_in_crop(scene.target_pose, Crop(gan_from_scene, size))
    return GanGeometry(crop, gan_from_scene, source, target, source.camera_labels(), target.camera_labels())


def expression_targets(scene: Scene, geo: GanGeometry, reader, frames: list[int], cfg: WarpConfig, chunk: int,
                       device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Expression-edited source images at `frames`, uint8 [K,3,S,S], with face and mouth-hole masks [K,1,S,S].

    `reader.read(frames)` gives the driving frames [K,H,W,3] for the mouth fill, or None (a still without a
    driving photo: the renderer's own fill)."""
    view = Crop(geo.gan_from_scene, geo.crop.size)
    renderer = make_renderer(scene, cfg, device, view)
    images, faces, holes = [], [], []
    for i in range(0, len(frames), chunk):
        idx = frames[i:i + chunk]
        n = len(idx)
        frames_rgb = reader.read(idx)
        drv = None if frames_rgb is None else frames_to_tensor(frames_rgb).to(device)
        # the target expressions at the source's pose
        target, dense = (None if m is None else apply_affine(view.crop_from_image, m).to(device)
                         for m in scene.target_meshes(idx, at=scene.source.pose.repeat_first(n)))
        placed = None if scene.driving_verts is None else scene.driving_verts[idx].to(device)
        out = renderer.render(idx[0], target, geo.source_pose.repeat_first(n, device), drv, placed, dense)
        images.append(_to_uint8(out.image))
        faces.append(_to_uint8(out.face))
        holes.append(_to_uint8((out.mouth > 0.05).float()))
    return torch.cat(images), torch.cat(faces), torch.cat(holes)


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return (x.clamp(0, 1) * 255 + 0.5).byte().cpu()


def _digest(*tensors: torch.Tensor) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


def face_points(depth: torch.Tensor, camera: torch.Tensor, face: torch.Tensor) -> torch.Tensor:
    """World points [P, 3] of the face pixels: mask [1,1,S,S] > 0.5 lifted by expected ray depth [1,1,r,r]."""
    s = face.shape[-1]
    depth = F.interpolate(depth, size=(s, s), mode="bilinear", align_corners=False)
    origins, dirs = sample_rays(camera[:, :16].view(-1, 4, 4), camera[:, 16:].view(-1, 3, 3), s)
    points = origins + depth.reshape(1, -1, 1) * dirs
    return points[0][face.reshape(-1) > 0.5]


def reproject_mask(points: torch.Tensor, cameras: torch.Tensor, size: int) -> torch.Tensor:
    """Soft masks [N,1,S,S] of world points [P,3] seen from cameras [N,25]: splat, close holes, blur.

    Paper §1.7 lifts the frame-0 face the same way; this projects with each camera's own world-to-camera
    transform (not the paper's near-frontal approximation). Blur: 15 px / sigma 7 at 512 px.
    """
    c2w = cameras[:, :16].view(-1, 4, 4)
    k = cameras[:, 16:].view(-1, 3, 3)
    cam = (points[None] - c2w[:, None, :3, 3]) @ c2w[:, :3, :3]
    uv = cam @ k.transpose(1, 2)
    uv = uv[..., :2] / uv[..., 2:].clamp_min(1e-6)
    pix = (uv * size).floor().long()
    inside = ((pix >= 0) & (pix < size)).all(-1)
    flat = (pix[..., 1] * size + pix[..., 0]).clamp(0, size * size - 1)
    mask = torch.zeros(len(cameras), size * size, device=points.device)
    mask.scatter_add_(1, flat, inside.float())
    mask = (mask > 0).float().view(-1, 1, size, size)
    r = max(1, size // 256)
    mask = F.max_pool2d(mask, 2 * r + 1, 1, r)
    mask = -F.max_pool2d(-mask, 2 * r + 1, 1, r)
    ks = max(3, round(15 * size / 512)) | 1
    sigma = 7.0 * size / 512
    return kf.gaussian_blur2d(mask, (ks, ks), (sigma, sigma))


def _progress(enabled: bool, desc: str, total: int):
    return lambda it: iter(tqdm(it, desc=desc, total=total, disable=not enabled, leave=False))


def invert_and_tune(G, scene: Scene, geo: GanGeometry, reader, g: GanConfig, warp: WarpConfig, chunk: int,
                    device: torch.device, work: WorkDir, progress: bool):
    """Steps 1-3: (tuned G, keyframe latents, frame-0 face mask), loaded from the work folder when present."""
    keyframes = keyframe_indices(len(geo.driving_cameras), g.keyframe_every)
    targets, faces, holes = expression_targets(scene, geo, reader, keyframes, warp, chunk, device)
    loss_fn = ImageLoss(ssim=g.ssim_weight, vgg=load_vgg16(g.perceptual)).to(device)
    c_src, c_cond = geo.source_camera.to(device), frontal_label(1, device=device)
    pos = {f: i for i, f in enumerate(keyframes)}
    yaw = float(geo.source_pose.angles()[0, 0].abs().deg2rad())
    w_m = spi_weight(yaw) if g.symmetry else 0.0
    if g.symmetry and w_m == 0:
        log.info("symmetry prior (SPI) skipped: the source is near frontal (|yaw| %.2f < %.1f rad)", yaw, SPI_MIN_YAW)
    elif g.symmetry:
        log.info("symmetry prior (SPI): the mirrored source at the mirrored camera in frame 0's projection, face "
                 "region, weight %.2f (|yaw| %.2f rad), asymmetric-region filter %s", w_m, yaw,
                 "on" if g.symmetry_filter else "off")

    def views(frame: int):
        i = pos[frame]
        target = targets[i:i + 1].to(device).float() / 255
        mask = faces[i:i + 1].to(device).float() / 255 * (holes[i:i + 1].to(device) == 0).float()
        if w_m > 0 and frame == 0:
            return mirrored_views(target, mask, c_src)
        return target, mask, c_src

    def mask_fn(frame: int):
        if w_m == 0 or frame != 0 or not g.symmetry_filter:
            return None
        target, masks, _ = views(0)
        return filtered_masks(target[:1], masks, c_src)

    proj = {k: v for k, v in asdict(g).items() if k not in ("tune_steps", "tune_lr", "locality", "checkpoint_every",
                                                            "save_every")}
    lat_key = (Path(g.generator), _digest(targets, faces, holes, geo.source_camera), proj)
    lat_path = work.path("gan-latents", LATENTS_VERSION, lat_key)
    latents = work.load(lat_path, Latents.load)
    if latents is None or len(latents.frames) < len(keyframes):
        w_avg, w_std = w_stats(G, c_cond, g.w_avg_samples, g.seed)
        torch.manual_seed(g.seed)
        latents = project_sequence(
            G, keyframes, views, loss_fn, w_avg=w_avg, w_std=w_std, steps_first=g.steps_first,
            steps_per_frame=g.steps_per_frame, done=latents, save_every=g.save_every,
            on_saved=(lambda lat: lat.save(lat_path)) if work.enabled else None,
            view_weights=lambda f: torch.tensor([1.0, w_m]) if w_m > 0 and f == 0 else None, mask_fn=mask_fn,
            progress=_progress(progress, "project", len(keyframes)), lr=g.lr, w_plus=g.w_plus,
            noise_weight=g.noise_weight)

    tune_key = (lat_key, _digest(latents.w), g.tune_steps, g.tune_lr, g.locality)
    checkpoint = work.path("gan-tune-ckpt", TUNED_VERSION, tune_key, ".pt")

    def tune():
        full = inpainted_targets(G, latents, targets, holes, c_src, chunk)
        tune_generator(G, latents.w, full, c_src, loss_fn, steps=g.tune_steps, lr=g.tune_lr, locality=g.locality,
                       checkpoint=checkpoint if work.enabled else None, checkpoint_every=g.checkpoint_every,
                       seed=g.seed, progress=_progress(progress, "tune", g.tune_steps))
        return G

    tuned = work.cached("gan-tuned", TUNED_VERSION, tune_key, tune, lambda path: load_generator(path, device),
                        lambda G, path: atomic_write(path, lambda tmp: save_generator(G, tmp)), ".pt")
    checkpoint.unlink(missing_ok=True)
    return tuned, latents, faces[:1]


@torch.no_grad()
def inpainted_targets(G, latents: Latents, targets: torch.Tensor, holes: torch.Tensor, c: torch.Tensor,
                      chunk: int) -> torch.Tensor:
    """Step 2: each target's mouth hole filled from its projected render (uint8 [K,3,S,S])."""
    s = targets.shape[-1]
    out = []
    for i in range(0, len(targets), chunk):
        w = latents.w[i:i + chunk].to(c.device)
        fill = render(G, w, c.expand(len(w), -1))
        full = inpaint_mouth(targets[i:i + chunk].to(c.device).float() / 255, holes[i:i + chunk].to(c.device),
                             fill, grow=round(32 * s / 512), blur=(round(9 * s / 512), 3.0 * s / 512))
        out.append(_to_uint8(full))
    return torch.cat(out)


@dataclass(frozen=True)
class GanState:
    """What the final render needs, built once per run by `prepare_gan`."""

    G: torch.nn.Module  # the tuned generator
    geo: GanGeometry
    latents: Latents
    points: torch.Tensor  # [P, 3] frame-0 face points in world coordinates


def prepare_gan(scene: Scene, reader, cfg: GanConfig, warp: WarpConfig, chunk: int, device: torch.device,
                work: WorkDir, progress: bool = False) -> GanState:
    """Steps 1-3 and the frame-0 face lifted to 3D by the tuned generator's depth."""
    G = load_generator(cfg.generator, device)
    log.info("3D GAN path on %s", device)
    geo = gan_geometry(scene, G.img_resolution)
    G, latents, face0 = invert_and_tune(G, scene, geo, reader, cfg, warp, chunk, device, work, progress)
    c_src = geo.source_camera.to(device)
    with torch.no_grad():
        depth = G.synthesis(latents.w[:1].to(device), c_src, noise_mode="const")["image_depth"]
    return GanState(G, geo, latents, face_points(depth, c_src, face0.to(device).float() / 255))


class GanSceneRenderer:
    """The 3D GAN renderer of a scene, prepared once per run (inversion and tuning, with their own progress):
    rendered crops of driving frames [start, end) per chunk, as `reenact.warp_render.WarpSceneRenderer` gives."""

    def __init__(self, scene: Scene, reader, cfg: GanConfig, warp: WarpConfig, output: OutputConfig,
                 device: torch.device, work: WorkDir, progress: bool = False):
        self.scene, self.reader, self.output, self.device = scene, reader, output, device
        self.state = prepare_gan(scene, reader, cfg, warp, output.chunk, device, work, progress)

    def chunks(self, start: int = 0, end: int | None = None) -> Iterator[tuple[torch.Tensor | None, Rendered]]:
        """Per chunk: (driving frames [N, 3, Hd, Wd] for a side-by-side output, else None; rendered crops)."""
        for first, n, frames in frame_chunks(self.reader, self.output.chunk, start, end):
            drv = driving_panel(self.scene, frames, first, n, self.device) if self.output.compare else None
            yield drv, render_gan(self.state, self.scene, torch.arange(first, first + n), self.device)


def render_gan(st: GanState, scene: Scene, idx: torch.Tensor, device: torch.device) -> Rendered:
    """Step 4 for target frames `idx` (consecutive): rendered crops of the scene."""
    n, s, size = len(idx), st.G.img_resolution, scene.crop.size
    cams = st.geo.driving_cameras[idx].to(device)
    with torch.no_grad():
        fg = render(st.G, interpolate_latents(st.latents, idx).to(device), cams)
        bg = render(st.G, st.latents.w[:1].to(device).expand(n, -1, -1), cams)
    face = reproject_mask(st.points, cams, s)
    image = face * fg + (1 - face) * bg
    # Into the run's crop, moved and scaled like the target head relative to the source.
    layers = warp_affine(torch.cat([image, face, feather_mask(s).to(device).expand(n, -1, -1, -1)], 1),
                         _placement(st.geo, idx).to(device), (size, size), padding="zeros")
    alpha = layers[:, 4:5] * scene.inside.to(device)
    out = layers[:, :3] * alpha + scene.source_crop.to(device) * (1 - alpha)
    return Rendered(int(idx[0]), out, layers[:, 3:4], alpha)


def _placement(geo: GanGeometry, idx: torch.Tensor) -> torch.Tensor:
    """[N, 2, 3] scene px -> GAN px, undoing the target head's 2D shift and scale relative to the source."""
    k = (geo.target_pose.scale[idx] / geo.source_pose.scale[0])[:, None]
    t0, t = geo.source_pose.translation[0, :2], geo.target_pose.translation[idx, :2]
    inv = torch.zeros(len(idx), 2, 3)
    inv[:, 0, 0] = inv[:, 1, 1] = 1 / k[:, 0]
    inv[:, :, 2] = t0 - t / k
    return compose_affine(inv, geo.gan_from_scene)
