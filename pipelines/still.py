"""Animate a single portrait: take the pose and expression of a driving photo, or explicit controls.

    python pipelines/still.py source.jpg --driving face.jpg -o out.png
    python pipelines/still.py source.jpg --yaw 20 --pitch -5 --preset smile -o out.png
    python pipelines/still.py source.jpg --expression jawOpen=0.6,mouthSmile_L=0.4 -o out.png   (ICT model)
    python pipelines/still.py source.jpg --turntable 24 -o turn.mp4        (or .gif, or a folder of PNGs)
    python pipelines/still.py source.jpg --yaw 30 --generator G.pkl --device cuda -o out.png   (the 3D GAN path)

Angles are degrees relative to the source's own pose unless --absolute-pose. Importable: `animate_still`
and `turntable` take and return RGB uint8 arrays. Composes only the public stages of `reenact`.
"""
from __future__ import annotations

import argparse
import logging
import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from reenact import (ARKIT, FLAG_ALIASES, GanSceneRenderer, HeadPose, InputError, Motion, MotionClock, ReenactError,
                     RunConfig, VideoWriter, WarpSceneRenderer, WorkDir, add_config_flags, angles_to_matrix,
                     build_config, build_scene, compose_frames, expressive_region, extract_motion, load_face_model,
                     mesh_offsets, read_image, resolve_device, track_image, write_gif, write_image)

STILL_SECTIONS = ("track", "face", "crop", "warp", "gan", "output")  # the settings a still uses (flags of the run's)


def _named_coeffs(source: Motion, values: dict[str, float]) -> torch.Tensor:
    names = source.expression.names
    if not names:
        raise InputError("--expression with blend-shape names needs the ICT-FaceKit face model "
                         "(python -m reenact.assets); use --preset with the default model")
    coeffs = source.expression.coeffs[0].clone()
    for name, value in values.items():
        if name not in names:
            raise InputError(f"--expression: unknown blend shape {name!r}")
        coeffs[names.index(name)] = value
    return coeffs


def target_motions(source: Motion, poses: torch.Tensor, coeffs: torch.Tensor) -> Motion:
    """A motion of len(poses) frames: image-from-head rotations [N, 3, 3] at the source's place, one code [D]."""
    n = len(poses)
    pose = HeadPose(poses, source.pose.translation[:1].expand(n, -1), source.pose.scale[:1].expand(n))
    expression = replace(source.expression, coeffs=coeffs[None].expand(n, -1).contiguous())
    return Motion(pose, expression, source.shape, torch.ones(n, dtype=torch.bool), 0.0, 0)


def _render(source_rgb: np.ndarray, src_tracks, source: Motion, target: Motion, model, cfg: RunConfig,
            driving_rgb: np.ndarray | None = None, driving: Motion | None = None) -> np.ndarray:
    """Target views through the warp renderer, or with `cfg.gan.generator` through the 3D GAN path (all views
    share one expression, so only the first and last are projected); the driving photo, if any, stands for the
    driving frame of every view."""
    scene = build_scene(source_rgb, src_tracks, source, driving or target, target, model, cfg.crop, cfg.warp.mesh,
                        cfg.face)
    device = resolve_device(cfg)
    clock = MotionClock(len(target), 25.0, driving_rgb)
    output = replace(cfg.output, compare=False)
    if cfg.gan.generator:
        renderer = GanSceneRenderer(scene, clock, replace(cfg.gan, keyframe_every=len(target)), cfg.warp, output,
                                    device, WorkDir(Path(), enabled=False))
    else:
        renderer = WarpSceneRenderer(scene, clock, cfg.warp, output, device)
    return np.concatenate([compose_frames(scene, None, rendered, output) for _, rendered in renderer.chunks()])


def animate_still(source_rgb: np.ndarray, driving_rgb: np.ndarray | None = None, *, yaw: float = 0.0,
                  pitch: float = 0.0, roll: float = 0.0, absolute_pose: bool = False,
                  expression: dict[str, float] | None = None, preset: str | None = None, strength: float = 1.0,
                  cfg: RunConfig = RunConfig(), names: tuple[str, str] = ("source", "driving")) -> np.ndarray:
    """The source portrait (uint8 [H, W, 3]) re-posed and re-expressed; returns uint8 [H, W, 3].

    With `driving_rgb`, the source takes the driving face's head rotation and expression (with the default
    face model: the driving face's mouth, eyes and brows in the canonical head frame). Otherwise yaw/pitch/
    roll (degrees, added to the source's own angles unless `absolute_pose`) and a preset or named
    blend-shape weights set the target. `names` label the images in error messages.
    """
    model = load_face_model(cfg.face)
    src_tracks = track_image(source_rgb, cfg.track, name=names[0])
    source = extract_motion(src_tracks, model, ref=0)
    if driving_rgb is not None:
        driving = extract_motion(track_image(driving_rgb, cfg.track, name=names[1]), model, ref=0)
        if source.expression.names:
            coeffs = driving.expression.coeffs[0]
        else:
            coeffs = (expressive_region(source.shape) * (driving.shape - source.shape)).reshape(-1)
        target = target_motions(source, driving.pose.rotation[:1], coeffs)
        return _render(source_rgb, src_tracks, source, target, model, cfg, driving_rgb, driving)[0]
    angles = torch.tensor([[yaw, pitch, roll]], dtype=torch.float32)
    rotation = angles_to_matrix(angles if absolute_pose else source.pose.angles() + angles)
    target = target_motions(source, rotation, _expression_code(source, expression, preset, strength))
    return _render(source_rgb, src_tracks, source, target, model, cfg)[0]


def _expression_code(source: Motion, expression: dict[str, float] | None, preset: str | None,
                     strength: float) -> torch.Tensor:
    if expression:
        return _named_coeffs(source, expression)
    if preset and source.expression.names:
        return _named_coeffs(source, {k: v * strength for k, v in ARKIT[preset].items()})
    if preset:
        return mesh_offsets(preset, strength).reshape(-1)
    return source.expression.coeffs[0]


def turntable(source_rgb: np.ndarray, n: int, *, yaw: float = 25.0, pitch: float = 6.0,
              cfg: RunConfig = RunConfig(), name: str = "source") -> np.ndarray:
    """N views [N, H, W, 3] sweeping yaw (+-yaw degrees) and a little pitch around the source's pose, a loop."""
    if n < 2:
        raise InputError("--turntable needs at least 2 views")
    model = load_face_model(cfg.face)
    src_tracks = track_image(source_rgb, cfg.track, name=name)
    source = extract_motion(src_tracks, model, ref=0)
    phase = torch.arange(n, dtype=torch.float32) * (2 * math.pi / n)
    offsets = torch.stack([yaw * torch.sin(phase), pitch * torch.sin(2 * phase), torch.zeros(n)], 1)
    target = target_motions(source, angles_to_matrix(source.pose.angles() + offsets), source.expression.coeffs[0])
    return _render(source_rgb, src_tracks, source, target, model, cfg)


def _parse_weights(text: str | None) -> dict[str, float] | None:
    if not text:
        return None
    try:
        return {k.strip(): float(v) for k, v in (item.split("=") for item in text.split(","))}
    except ValueError:
        raise InputError(f"--expression: expected NAME=VALUE[,NAME=VALUE...], got {text!r}") from None


def _write_views(frames: np.ndarray, out: Path, fps: float) -> None:
    suffix = out.suffix.lower()
    if suffix == ".mp4":
        with VideoWriter(out, fps, frames.shape[2], frames.shape[1]) as writer:
            writer.write(frames)
    elif suffix == ".gif":
        write_gif(out, frames, fps)
    elif suffix == "":
        out.mkdir(parents=True, exist_ok=True)
        for i, frame in enumerate(frames):
            write_image(out / f"view_{i:03d}.png", frame)
    else:
        raise InputError(f"{out}: a turntable is written as .mp4, .gif or a folder of PNGs")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python pipelines/still.py", description=__doc__.split("\n\n")[0])
    p.add_argument("source", type=Path, help="portrait image")
    p.add_argument("-o", "--output", type=Path, required=True, help="output image (.png/.jpg/.webp), or for "
                   "--turntable an .mp4, .gif or folder")
    p.add_argument("--driving", type=Path, help="driving photo: take its head pose and expression")
    p.add_argument("--yaw", type=float, default=0.0, help="degrees, > 0 turns the face toward the image right")
    p.add_argument("--pitch", type=float, default=0.0, help="degrees, > 0 tips the face down")
    p.add_argument("--roll", type=float, default=0.0, help="degrees, > 0 tilts the head counter-clockwise")
    p.add_argument("--absolute-pose", action="store_true", help="angles are absolute, not added to the source's")
    p.add_argument("--expression", help="blend-shape weights NAME=VALUE,... (needs the ICT-FaceKit model)")
    p.add_argument("--preset", choices=sorted(ARKIT), help="a named expression that works with every face model")
    p.add_argument("--strength", type=float, default=1.0, help="multiplies the preset")
    p.add_argument("--turntable", type=int, metavar="N", help="write N views sweeping yaw instead of one image")
    p.add_argument("--fps", type=float, default=25.0, help="turntable video frame rate")
    p.add_argument("--device", default="auto", help="torch device (auto: cuda for --generator when present, else cpu)")
    add_config_flags(p, RunConfig, FLAG_ALIASES, STILL_SECTIONS)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="reenact: %(message)s")
    try:
        cfg = replace(build_config(RunConfig, args), progress=False, device=args.device)
        if args.output.resolve() in {args.source.resolve(), args.driving and args.driving.resolve()}:
            raise InputError(f"{args.output}: the output path is an input; choose another -o")
        source = read_image(args.source)
        if args.turntable:
            _write_views(turntable(source, args.turntable, cfg=cfg, name=str(args.source)), args.output, args.fps)
        else:
            driving = read_image(args.driving) if args.driving else None
            image = animate_still(source, driving, yaw=args.yaw, pitch=args.pitch, roll=args.roll,
                                  absolute_pose=args.absolute_pose, expression=_parse_weights(args.expression),
                                  preset=args.preset, strength=args.strength, cfg=cfg,
                                  names=(str(args.source), str(args.driving)))
            args.output.parent.mkdir(parents=True, exist_ok=True)
            write_image(args.output, image)
    except ReenactError as exc:
        print(f"reenact: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # e.g. an unknown image suffix from the writer
        print(f"reenact: {args.output}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
