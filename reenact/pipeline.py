"""The staged reenactment pipeline, top to bottom as the method reads.

inputs -> track (source, driving) -> pose + expression -> screen + repair -> smooth -> transfer -> crop ->
per chunk of frames: render -> compose -> write. Whole-video records (tracks, motions) are cached in the work
folder, keyed by the inputs and the settings that shape them, so a re-run skips tracking.
"""
from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator, Protocol

import numpy as np
import torch
from tqdm import tqdm

from reenact.cache import WorkDir, key_of
from reenact.compose import OutputConfig, paste_back, side_by_side
from reenact.crop import CropConfig
from reenact.dense_face import DENSE_VERSION
from reenact.driving import driving_motion
from reenact.errors import InputError
from reenact.expression import FaceModel, FaceModelConfig, extract_motion, load_face_model
from reenact.gan_render import GanConfig, GanSceneRenderer
from reenact.inputs import FrameRange, MotionClock, frames_to_tensor, load_source, tensor_to_frames
from reenact.scene import Scene, build_scene
from reenact.screen import REGIONS, ScreenConfig
from reenact.smooth import SmoothConfig
from reenact.structures import Motion, Rendered, Tracks
from reenact.track import TRACKS_VERSION, TrackConfig, track_image, track_video
from reenact.tracks_io import save_tracks
from reenact.transfer import TransferConfig, transfer
from reenact.warp import WarpConfig, WarpMap, paste_frames
from reenact.warp_render import WarpSceneRenderer
from third_party_wrappers.memory import release_free_memory
from third_party_wrappers.video import VideoWriter, open_video

log = logging.getLogger("reenact")
RENDER_VERSION = 25  # part of the rendered segments' cache key: bump when rendering changes its output


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


FLAG_ALIASES = {  # short flags of the command lines for the options users reach for most
    "transfer.ref_frame": ("--ref-frame",),
    "transfer.mode": ("--mode",),
    "transfer.expression_scale": ("--expression-scale",),
    "smooth.method": ("--smooth",),
    "output.compare": ("--compare",),
    "output.crop_only": ("--crop-only",),
    "gan.generator": ("--generator",),
    "gan.steps_first": ("--steps-first",),
    "gan.steps_per_frame": ("--steps-per-frame",),
    "gan.tune_steps": ("--tune-steps",),
    "gan.keyframe_every": ("--keyframe-every",),
}


class Renderer(Protocol):
    """A scene's renderer, prepared once per run (`scene_renderer`): per chunk of driving frames [start, end),
    (driving frames [N, 3, Hd, Wd] for a side-by-side output, else None; warp maps or rendered crops), which
    `compose_frames` turns into output frames."""

    def chunks(self, start: int = 0,
               end: int | None = None) -> Iterator[tuple[torch.Tensor | None, Rendered | WarpMap]]: ...


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


def prepare(source_path, driving_path, reader, cfg: RunConfig, work: WorkDir, model: FaceModel,
            driving: Motion | None = None) -> Scene:
    """Inputs, tracking, pose + expression, smoothing, transfer and the source crop.

    `driving`: a driving Motion to use as is (e.g. edited curves) instead of tracking the video.
    """
    info = reader.info
    source_rgb = load_source(source_path, cfg.output.max_side)

    # Track the source (static) and the driving video (tracking mode, streamed, decoding read ahead).
    src_tracks = work.cached("source-tracks", TRACKS_VERSION, (Path(source_path), cfg.track, cfg.output.max_side),
                             lambda: track_image(source_rgb, cfg.track, name=str(source_path)), Tracks.load)
    source = extract_motion(src_tracks, model, ref=0)
    if driving is None:
        drv_tracks = work.cached("driving-tracks", TRACKS_VERSION,
                                 (Path(driving_path), cfg.track, cfg.allow_truncated, cfg.start, cfg.end),
                                 lambda: track_video(driving_path, info.n_frames, info.fps, cfg.track,
                                                     progress=cfg.progress, allow_truncated=cfg.allow_truncated,
                                                     start=cfg.start), Tracks.load)
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
    scene = build_scene(source_rgb, src_tracks, source, driving, transfer(source, driving, cfg.transfer), model,
                        cfg.crop, cfg.warp.mesh, cfg.face)
    return replace(scene, readable=readable)


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


def scene_renderer(scene: Scene, reader, cfg: RunConfig, device: torch.device, work: WorkDir) -> Renderer:
    """The renderer of a run, prepared: the 3D GAN's with a generator (inversion and tuning run here, with their own
    progress), else the warp's."""
    log.info("face model: %s; warp mesh: %s; renderer: %s", scene.model_name,
             "landmarks" if scene.dense is None else f"dense ICT face ({len(scene.dense.faces)} triangles)",
             "3D GAN" if cfg.gan.generator else "warp")
    if cfg.gan.generator:
        return GanSceneRenderer(scene, reader, cfg.gan, cfg.warp, cfg.output, device, work, cfg.progress)
    return WarpSceneRenderer(scene, reader, cfg.warp, cfg.output, device)


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
        scene = prepare(source_path, driving_path, reader, cfg, work, model, driving)
        if export_tracks:
            save_tracks(scene.driving, export_tracks)
        segments = _segments(scene, source_path, driving_path, reader.info.n_frames, cfg, work, driving, scratch)
        missing = [(start, end, part) for start, end, part in segments if not _complete(part, end - start)]
        renderer = scene_renderer(scene, reader, cfg, device, work) if missing else None
        with tqdm(total=reader.info.n_frames, desc="render", unit="frame", disable=not cfg.progress) as bar:
            bar.update(reader.info.n_frames - sum(end - start for start, end, _ in missing))
            for start, end, part in missing:
                _render_segment(scene, reader, cfg.output, renderer, start, end, part, bar)
        _join(out_path, segments, reader, driving_path, cfg.start)
    return scene.target


def _segments(scene: Scene, source_path, driving_path, n_frames: int, cfg: RunConfig, work: WorkDir,
              driving: Motion | None, scratch: str) -> list[tuple[int, int, Path]]:
    """The run's segments (first frame, end, file), in a work folder keyed by everything that shapes the frames
    (a scratch folder without caching)."""
    settings = replace(cfg, progress=True, device="", output=replace(cfg.output, chunk=0))
    edited = None if driving is None else key_of("motion", (driving.pose.rotation.numpy().tobytes(),
                                                           driving.expression.coeffs.numpy().tobytes()))
    resolved = (scene.model_name, None if scene.dense is None else DENSE_VERSION)  # what "auto" settings came to
    inputs = [None if p is None else Path(p) for p in (source_path, driving_path, cfg.gan.generator)]  # contents
    key = (*inputs, settings, edited, resolved)
    folder = work.path("segments", RENDER_VERSION, key, suffix="") if work.enabled else Path(scratch)
    folder.mkdir(parents=True, exist_ok=True)
    bounds = list(range(0, n_frames, cfg.output.segment)) + [n_frames]
    return [(start, end, folder / f"{start:06d}-{end:06d}.mp4") for start, end in zip(bounds[:-1], bounds[1:])]


def _join(out_path, segments: list[tuple[int, int, Path]], reader, driving_path, first: int) -> None:
    """The output: the segments joined (stream copy) with the driving video's audio from frame `first` on."""
    info, times = reader.info, getattr(reader, "times", None)
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    with VideoWriter(out_path, info.fps, 0, 0, audio_from=driving_path if info.has_audio else None,
                     segments_like=segments[0][2], audio_start=first / info.fps) as writer:
        for start, _, part in segments:
            writer.append_segment(part, None if times is None else float(times[start]))


def _driving_reader(driving_path, cfg: RunConfig, driving: Motion | None):
    """The driving video (or its frame range), or, for a motion without a video, a frameless clock."""
    if driving_path is None:
        if driving is None:
            raise InputError("give a driving video or a driving motion (--tracks)")
        if cfg.start or cfg.end is not None:
            raise InputError("--start and --end need a driving video")
        return MotionClock(len(driving), driving.fps or 25.0)
    reader = open_video(driving_path, allow_truncated=cfg.allow_truncated)
    return FrameRange(reader, cfg.start, cfg.end) if cfg.start or cfg.end is not None else reader


def _render_segment(scene: Scene, reader, cfg: OutputConfig, renderer: Renderer, start: int, end: int, part: Path,
                    bar) -> None:
    """Render, compose and encode frames [start, end) into one segment file."""
    writer = None
    try:
        for drv, rendered in renderer.chunks(start, end):
            frames = compose_frames(scene, drv, rendered, cfg)
            if writer is None:
                times = getattr(reader, "times", None)
                writer = VideoWriter(part, reader.info.fps, frames.shape[2], frames.shape[1], crf=cfg.crf,
                                     times=None if times is None else times[start:end + 1] - times[start])
            writer.write(frames)
            bar.update(len(frames))
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    writer.close()
    release_free_memory()  # the freed temporaries of the segment: without this the resident size creeps up


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


