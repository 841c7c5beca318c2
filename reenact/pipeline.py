"""The staged reenactment pipeline, top to bottom as the method reads.

inputs -> track (source, driving) -> pose + expression -> screen + repair -> smooth -> transfer -> crop ->
per chunk of frames: render -> compose -> write. Whole-video records (tracks, motions) are cached in the work
folder, keyed by the inputs and the settings that shape them, so a re-run skips tracking.
"""
from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field, replace
from functools import cached_property, partial
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from tqdm import tqdm

from reenact.backdrop import Backdrop
from reenact.cache import WorkDir, key_of
from reenact.compose import feather_mask, paste_back, side_by_side
from reenact.crop import CropConfig, apply_affine, ffhq_crop, warp_affine
from reenact.dense_face import DENSE_VERSION, DenseFace, dense_basis, subject_face
from reenact.driving import driving_motion
from reenact.errors import InputError, MissingAssetError
from reenact.expression import FaceModel, FaceModelConfig, extract_motion, load_face_model
from reenact.gan_render import GanConfig, gan_chunks
from reenact.ict import IctModel
from reenact.inputs import FrameRange, MotionClock, frames_to_tensor, load_source, prefetch, tensor_to_frames
from reenact.pose import to_image
from reenact.screen import REGIONS, ScreenConfig
from reenact.smooth import SmoothConfig
from reenact.structures import Crop, HeadPose, Motion, Rendered, Tracks
from reenact.track import TrackConfig, track_image, track_video
from reenact.tracks_io import save_tracks
from reenact.transfer import TransferConfig, transfer
from reenact.warp import BORDER, DenseMesh, WarpConfig, WarpMap, WarpRenderer, paste_frames
from third_party_wrappers.facemesh import segment_person
from third_party_wrappers.video import VideoWriter, open_video

log = logging.getLogger("reenact")
RENDER_VERSION = 12  # part of the rendered segments' cache key: bump when rendering changes its output
MAX_CROP_SCALE = 3.0  # the crop grows with the head's travel up to this scale

FACE_MARGIN = 0.5  # the driving frame around the driver's landmark box that the mouth fill may read (of its size)


@dataclass(frozen=True)
class OutputConfig:
    compare: bool = False  # write driving | source | result side by side
    crop_only: bool = False  # write the animated crop instead of pasting it back into the source frame
    max_side: int = 1280  # the source is downscaled to this size before anything else
    chunk: int = 8  # frames rendered at once at 512 x 512 (fewer for larger frames; bounds memory)
    segment: int = 64  # frames per encoded segment: the unit of resume after an interruption
    crf: int = 18  # H.264 quality (lower is better)


@dataclass(frozen=True)
class RunConfig:
    track: TrackConfig = field(default_factory=TrackConfig)
    face: FaceModelConfig = field(default_factory=FaceModelConfig)
    screen: ScreenConfig = field(default_factory=ScreenConfig)
    smooth: SmoothConfig = field(default_factory=SmoothConfig)
    transfer: TransferConfig = field(default_factory=TransferConfig)
    crop: CropConfig = field(default_factory=CropConfig)
    warp: WarpConfig = field(default_factory=WarpConfig)
    gan: GanConfig = field(default_factory=GanConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    device: str = "auto"  # a torch device, or auto: CUDA for the 3D GAN path when a GPU is present, else CPU
    allow_truncated: bool = False
    start: int = 0  # first driving frame used
    end: int | None = None  # one past the last driving frame used (None: to the end)
    progress: bool = True


def pose_in_crop(pose: HeadPose, crop: Crop) -> HeadPose:
    """The same head poses expressed in crop pixels (rotation composed with the crop's in-plane turn)."""
    a = crop.crop_from_image
    k = a[:, :2].det().abs().sqrt()
    turn = torch.eye(3)
    turn[:2, :2] = a[:, :2] / k
    return HeadPose(turn @ pose.rotation, apply_affine(a, pose.translation[:, None])[:, 0], pose.scale * k)


def resolve_device(cfg: RunConfig) -> torch.device:
    """The torch device of a run. "auto" takes CUDA for the 3D GAN path when a GPU is present (on a CPU it takes
    hours a clip) and the CPU otherwise (the warp renderer runs at video rate there); a named CUDA device must exist."""
    name = cfg.device
    if name == "auto":
        name = "cuda" if cfg.gan.generator and torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(f"--device {name}: not a torch device (cpu, cuda, cuda:1, auto)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {name}: CUDA is not available on this machine (use --device cpu)")
    return device


@dataclass
class Scene:
    """Everything the renderers need, prepared once per run (in memory, not a record)."""

    frame: Backdrop  # the source image [3, H, W] in [0, 1] and its person mask
    cropped: Backdrop  # the same in its aligned crop [3, S, S]
    crop: Crop
    source_verts: torch.Tensor  # [478, 3] source landmarks, crop px
    inside: torch.Tensor  # [1, S, S] crop pixels that lie inside the source image
    source: Motion  # T = 1
    driving: Motion  # smoothed, T frames
    target: Motion  # transferred, T frames
    target_verts: torch.Tensor  # [T, 478, 3] target landmarks, crop px
    target_pose: HeadPose  # [T] target poses in crop px
    driving_verts: torch.Tensor | None  # [T, 478, 3] smoothed driving landmarks, driving px (None: not placed)
    dense: DenseFace | None = None  # the source's dense ICT face (head frame) for the warp's mesh map, or None
    readable: torch.Tensor | None = None  # [T] bool: the driving frame shows the driver's mouth (None: all do)

    @property
    def source_full(self) -> torch.Tensor:
        return self.frame.image

    @cached_property
    def frame_rgb(self) -> np.ndarray:
        """The source frame in uint8 [H, W, 3], the part of every output frame the motion does not reach."""
        return tensor_to_frames(self.frame.image[None])[0]

    @property
    def source_crop(self) -> torch.Tensor:
        return self.cropped.image

    def dense_meshes(self, motion: Motion, frames, at: HeadPose | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The dense face's landmarks [n, 478, 3] and vertices [n, V, 3] in crop px, wearing a motion's expressions
        at its poses (or at the image-px poses `at`), for `frames` of it (a slice or indices)."""
        pose = at if at is not None else HeadPose(motion.pose.rotation[frames], motion.pose.translation[frames],
                                                  motion.pose.scale[frames])
        coeffs = motion.expression.coeffs[frames]
        return tuple(apply_affine(self.crop.crop_from_image, to_image(x, pose))
                     for x in (self.dense.landmarks(coeffs), self.dense.vertices(coeffs)))


def prepare(source_path, driving_path, reader, cfg: RunConfig, work: WorkDir, model: FaceModel,
            driving: Motion | None = None) -> Scene:
    """Inputs, tracking, pose + expression, smoothing, transfer and the source crop.

    `driving`: a driving Motion to use as is (e.g. edited curves) instead of tracking the video.
    """
    info = reader.info
    source_rgb = load_source(source_path, cfg.output.max_side)

    # Track the source (static) and the driving video (tracking mode, streamed, decoding read ahead).
    src_tracks = work.cached("source-tracks", Tracks, (source_path, cfg.track, cfg.output.max_side),
                             lambda: track_image(source_rgb, cfg.track, name=str(source_path)))
    source = extract_motion(src_tracks, model, ref=0)
    if driving is None:
        drv_tracks = work.cached("driving-tracks", Tracks,
                                 (driving_path, cfg.track, cfg.allow_truncated, cfg.start, cfg.end),
                                 lambda: track_video(driving_path, info.n_frames, info.fps, cfg.track,
                                                     progress=cfg.progress, allow_truncated=cfg.allow_truncated,
                                                     start=cfg.start))
        driving, screening = driving_motion(drv_tracks, model, cfg.transfer.ref_frame, cfg.track, cfg.screen,
                                            cfg.smooth, str(driving_path))
        readable = screening.usable & ~screening.occluded[:, REGIONS.index("mouth")]
        if cfg.transfer.ref_frame is None:
            log.info("driving reference frame: %d (the most frontal, most neutral)", driving.ref)
    else:
        readable = driving.found
    if len(driving) != info.n_frames or driving.expression.model != model.code:
        raise InputError(f"{driving_path or 'the driving motion'}: it has {len(driving)} frames of "
                         f"{driving.expression.model} expressions; the video has {info.n_frames} frames and the face "
                         f"model ({model.name}) takes {model.code} expressions")
    scene = build_scene(source_rgb, src_tracks, source, driving, transfer(source, driving, cfg.transfer), model, cfg)
    return replace(scene, readable=readable)


def build_scene(source_rgb: np.ndarray, src_tracks: Tracks, source: Motion, driving: Motion, target: Motion,
                model: FaceModel, cfg: RunConfig) -> Scene:
    """The aligned crop of the source, its person and in-image masks, and the target meshes in crop pixels."""
    crop_cfg = replace(cfg.crop, scale=_crop_scale(src_tracks, source.pose, target.pose, cfg.crop))
    crop_cfg = replace(crop_cfg, size=_crop_size(src_tracks, crop_cfg, source_rgb.shape))
    crop = ffhq_crop(src_tracks.landmarks[0], crop_cfg)
    source_full = frames_to_tensor(source_rgb[None])[0]
    inv = crop.image_from_crop[None]
    source_crop = warp_affine(source_full[None], inv, (crop.size, crop.size))[0]
    inside = warp_affine(torch.ones(1, 1, *source_full.shape[-2:]), inv, (crop.size, crop.size), padding="zeros")[0]
    person = _person_mask(source_rgb, torch.from_numpy(segment_person(tensor_to_frames(source_crop[None])[0]))[None],
                          crop)
    frame = Backdrop.of(source_full, person)
    target_verts = to_image(model.mesh(target.shape, target.expression), target.pose)
    return Scene(frame, frame.cropped(crop), crop, apply_affine(crop.crop_from_image, src_tracks.landmarks[0]),
                 inside, source, driving, target, apply_affine(crop.crop_from_image, target_verts),
                 pose_in_crop(target.pose, crop), _driving_verts(driving, model), _dense_face(model, source, cfg))


def _driving_verts(driving: Motion, model: FaceModel) -> torch.Tensor | None:
    """The driving landmarks in driving px, which place the mouth fill in the driving frames; None for a motion
    without positions (imported CSV or JSON tracks), whose mouth is then shaded from the source's lips instead
    of read from a wrong place of the frame."""
    if not driving.placed:
        return None
    return to_image(model.mesh(driving.shape, driving.expression), driving.pose)


def _person_mask(source_rgb: np.ndarray, person_crop: torch.Tensor, crop: Crop) -> torch.Tensor:
    """The source's person mask [1, H, W]: the segmentation of the crop (the finer one, at the crop's resolution)
    where the crop reaches, feathered into the segmentation of the whole image beyond it."""
    whole = torch.from_numpy(segment_person(source_rgb))[None]
    h, w = whole.shape[-2:]
    feather = feather_mask(crop.size)[0]
    pasted = warp_affine(torch.cat([person_crop * feather, feather])[None], crop.crop_from_image[None], (h, w),
                         padding="zeros")[0]
    return whole * (1 - pasted[1:]) + pasted[:1]


def _dense_face(model: FaceModel, source: Motion, cfg: RunConfig) -> DenseFace | None:
    """The source's dense face when the warp maps through it: `--warp.mesh dense`, or auto with the ICT model (the
    model file is looked for as `cfg.face` says; auto falls back to the landmark mesh, with a warning, without it)."""
    ict = isinstance(model, IctModel)
    if cfg.warp.mesh == "landmarks" or (cfg.warp.mesh == "auto" and not ict):
        return None
    if not ict:
        raise InputError("--warp.mesh dense needs the ICT-FaceKit face model (--face.model ict)")
    try:
        return subject_face(dense_basis(cfg.face.path), model, source)
    except MissingAssetError as exc:
        if cfg.warp.mesh == "dense":
            raise
        log.warning("warp mesh: the landmark mesh, since %s", exc)
        return None


def make_renderer(scene: Scene, cfg: RunConfig, device: torch.device, view: Crop | None = None) -> WarpRenderer:
    """The default renderer for a scene's source crop (mapping through the dense face when the scene has one), or
    for `view`, a crop of the scene crop's pixels (the 3D GAN's)."""
    source_verts, dense = scene.source_verts, None
    if scene.dense is not None:  # its landmarks differ from the tracked ones by the spline's error (below 2 px)
        landmarks, verts = scene.dense_meshes(scene.source, slice(0, 1))
        source_verts, dense = landmarks[0], DenseMesh(scene.dense.faces, verts[0])
    backdrop, inside = scene.cropped.to(device), scene.inside.to(device)
    pose = pose_in_crop(scene.source.pose, scene.crop)
    if view is not None:
        backdrop = backdrop.cropped(view)
        inside = warp_affine(inside[None], view.image_from_crop[None].to(device), (view.size, view.size))[0]
        pose = pose_in_crop(pose, view)
        source_verts = apply_affine(view.crop_from_image, source_verts)
        dense = None if dense is None else DenseMesh(dense.faces, apply_affine(view.crop_from_image, dense.source))
    return WarpRenderer(backdrop, source_verts, pose, inside, cfg.warp, dense)


def render_range(renderer: WarpRenderer, scene: Scene, start: int, n: int, device: torch.device,
                 driving: torch.Tensor | None = None, images: bool = True,
                 driving_origin: tuple[int, int] = (0, 0)) -> Rendered | WarpMap:
    """Target frames [start, start + n) of a scene: rendered crops, or (`images` False) the warp maps that
    `paste_frames` resamples the full source frame through; `driving` frames [n, 3, Hd, Wd] (or a window of them
    whose top-left pixel is `driving_origin`, x y) feed the mouth fill.
    With a dense face, its landmarks stand in for the scene's target landmarks (both move by its geometry)."""
    sl = slice(start, start + n)
    pose = HeadPose(*(x[sl].to(device) for x in (scene.target_pose.rotation, scene.target_pose.translation,
                                                  scene.target_pose.scale)))
    target, dense = (scene.target_verts[sl], None) if scene.dense is None else scene.dense_meshes(scene.target, sl)
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


def warp_chunks(scene: Scene, reader, cfg: RunConfig, device: torch.device, start: int = 0,
                end: int | None = None) -> Iterator[tuple[torch.Tensor | None, Rendered | WarpMap]]:
    """The default renderer over driving frames [start, end): (driving frames [N, 3, Hd, Wd] for a side-by-side
    output, else None; warp maps, or rendered crops for a crop-only output)."""
    renderer = make_renderer(scene, cfg, device)
    size = chunk_size(scene, cfg.output)
    for first, frames in prefetch(reader.chunks(size, start, end)):
        n = min(size, (reader.info.n_frames if end is None else end) - first) if frames is None else len(frames)
        drv = window = None  # None: a motion without video, or a driver not placed in its frames
        origin = (0, 0)
        if frames is not None:
            drv = frames_to_tensor(frames).to(device) if cfg.output.compare else None
            if scene.driving_verts is not None:
                window, origin = face_window(frames, scene.driving_verts[first:first + n])
                window = window.to(device)
        yield drv, render_range(renderer, scene, first, n, device, window, cfg.output.crop_only, origin)


def chunk_size(scene: Scene, cfg: OutputConfig) -> int:
    """Frames per chunk: `cfg.chunk` for 512 x 512 frames, proportionally fewer for larger ones (bounded memory)."""
    pixels = max(scene.crop.size ** 2, scene.source_full.shape[-1] * scene.source_full.shape[-2])
    return max(1, min(cfg.chunk, cfg.chunk * 512 * 512 // pixels))


def compose_frames(scene: Scene, drv: torch.Tensor, rendered: Rendered | WarpMap, cfg: OutputConfig) -> np.ndarray:
    """Output frames (uint8 RGB [N, H, W, 3]) of one chunk: the source frame resampled through warp maps, rendered
    crops pasted back, or the crops themselves, optionally beside the driving and source."""
    source = scene.source_crop if cfg.crop_only else scene.source_full
    if isinstance(rendered, WarpMap):
        frames = paste_frames(scene.frame.to(rendered.read.device), rendered, scene.crop, scene.frame_rgb)
        if not cfg.compare or drv is None:
            return frames
        result = frames_to_tensor(frames).to(drv.device)
    elif cfg.crop_only:
        result = rendered.image
    else:
        result = paste_back(source.to(rendered.image.device), rendered, scene.crop)
    if cfg.compare and drv is not None:
        result = side_by_side(result, drv, source[None].to(result.device).expand(len(drv), -1, -1, -1),
                              result)[..., result.shape[-1]:]
    return tensor_to_frames(result)


def reenact_video(source_path, driving_path, out_path, cfg: RunConfig = RunConfig(), work: WorkDir | None = None,
                  export_tracks: Path | None = None, driving: Motion | None = None):
    """Animate the source portrait with the driving video; writes an MP4 at `out_path`. Returns the target Motion.
    `export_tracks` also writes the (smoothed) driving pose + expression there (.csv, .json, .npz);
    `driving` replaces the tracked driving motion (same frame count, same face model), e.g. edited curves.

    Frames are rendered into encoded segments of `cfg.output.segment` frames in the work folder; an
    interrupted run resumes after the last finished segment, and the output joins them (stream copy)
    with the driving audio, written to a temporary file and renamed when complete.
    """
    model = load_face_model(cfg.face)
    device = resolve_device(cfg)
    work = work or WorkDir.temporary()
    with _driving_reader(driving_path, cfg, driving) as reader, \
            tempfile.TemporaryDirectory(prefix="reenact-") as scratch:
        info = reader.info
        scene = prepare(source_path, driving_path, reader, cfg, work, model, driving)
        log.info("face model: %s; warp mesh: %s", model.name,
                 "landmarks" if scene.dense is None else f"dense ICT face ({len(scene.dense.faces)} triangles)")
        if export_tracks:
            save_tracks(scene.driving, export_tracks)
        settings = replace(cfg, progress=True, device="", output=replace(cfg.output, chunk=0))
        edited = None if driving is None else key_of("motion", (driving.pose.rotation.numpy().tobytes(),
                                                               driving.expression.coeffs.numpy().tobytes()))
        resolved = (model.name, None if scene.dense is None else DENSE_VERSION)  # what the "auto" settings came to
        key = (RENDER_VERSION, source_path, driving_path, settings, edited, cfg.gan.generator,  # checkpoint content counts
               resolved)
        seg_dir = work.path("segments", key, suffix="") if work.enabled \
            else Path(scratch)
        bounds = list(range(0, info.n_frames, cfg.output.segment)) + [info.n_frames]
        chunks = (gan_chunks(scene, reader, cfg, device, work) if cfg.gan.generator
                  else partial(warp_chunks, scene, reader, cfg, device))
        parts = []
        with tqdm(total=info.n_frames, desc="render", unit="frame", disable=not cfg.progress) as bar:
            for start, end in zip(bounds[:-1], bounds[1:]):
                part = seg_dir / f"{start:06d}-{end:06d}.mp4"
                if not _complete(part, end - start):
                    seg_dir.mkdir(parents=True, exist_ok=True)
                    _render_segment(scene, reader, cfg, chunks, start, end, part, bar)
                else:
                    bar.update(end - start)
                parts.append(part)
        Path(out_path).parent.mkdir(parents=True, exist_ok=True)
        times = getattr(reader, "times", None)
        with VideoWriter(out_path, info.fps, 0, 0, audio_from=driving_path if info.has_audio else None,
                         segments_like=parts[0], audio_start=cfg.start / info.fps) as writer:
            for part, start in zip(parts, bounds):
                writer.append_segment(part, None if times is None else float(times[start]))
    return scene.target


def _driving_reader(driving_path, cfg: RunConfig, driving: Motion | None):
    """The driving video (or its frame range), or, for a motion without a video, a frameless clock."""
    if driving_path is None:
        if driving is None:
            raise InputError("give a driving video or a driving motion (--tracks)")
        if cfg.start or cfg.end is not None or cfg.output.compare:
            raise InputError("--start, --end and --compare need a driving video")
        return MotionClock(len(driving), driving.fps or 25.0)
    reader = open_video(driving_path, allow_truncated=cfg.allow_truncated)
    return FrameRange(reader, cfg.start, cfg.end) if cfg.start or cfg.end is not None else reader


def _render_segment(scene: Scene, reader, cfg: RunConfig, chunks, start: int, end: int, part: Path, bar) -> None:
    """Render (`chunks(start, end)`: warp or GAN), compose and encode frames [start, end) into one segment file."""
    writer = None
    try:
        for drv, rendered in chunks(start, end):
            frames = compose_frames(scene, drv, rendered, cfg.output)
            if writer is None:
                times = getattr(reader, "times", None)
                writer = VideoWriter(part, reader.info.fps, frames.shape[2], frames.shape[1], crf=cfg.output.crf,
                                     times=None if times is None else times[start:end + 1] - times[start])
            writer.write(frames)
            bar.update(len(frames))
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    writer.close()


def _complete(part: Path, n_frames: int) -> bool:
    """Whether a segment file exists and holds all its frames (else it is re-rendered)."""
    if not part.exists():
        return False
    try:
        with open_video(part) as seg:
            if seg.info.n_frames == n_frames:
                return True
    except InputError:
        pass
    log.warning("re-rendering an incomplete segment: %s", part)
    part.unlink(missing_ok=True)
    return False


def _crop_scale(tracks: Tracks, source: HeadPose, target: HeadPose, cfg: CropConfig) -> float:
    """`cfg.scale` grown by how far the target head travels from the source's place (its largest shift along
    either crop axis, over the recipe crop's half side, beyond the faded border), at most MAX_CROP_SCALE. The warp
    moves nothing beyond the crop, so a head that travels further than the crop's margin tore at its edge."""
    unit = ffhq_crop(tracks.landmarks[0], replace(cfg, scale=1.0))
    at = apply_affine(unit.crop_from_image, torch.cat([source.translation[:1], target.translation])[:, None, :2])[:, 0]
    travel = float((at[1:] - at[:1]).abs().amax()) if len(at) > 1 else 0.0
    return min(cfg.scale + travel / (unit.size / 2) / (1 - 2 * BORDER), max(cfg.scale, MAX_CROP_SCALE))


def _crop_size(tracks: Tracks, cfg: CropConfig, shape) -> int:
    """Render at about the source's own resolution of the crop, within [256, cfg.size * 2], a multiple of 16."""
    crop = ffhq_crop(tracks.landmarks[0], cfg)
    side = float(cfg.size / crop.crop_from_image[:, :2].det().abs().sqrt())
    side = min(side, max(shape[:2]), 2 * cfg.size)
    return int(max(256, round(side / 16) * 16))
