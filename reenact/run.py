"""`python -m reenact.run SOURCE DRIVING [-o OUT.mp4]`: animate a portrait with a driving video.

The output keeps the source's framing, the driving video's frame count, fps and audio. Intermediate
records go to a work folder beside the output (`<output dir>/.reenact-work`), never beside the inputs;
a re-run with the same inputs and settings reuses them. Bad input: one line on stderr, exit code 2.
"""
from __future__ import annotations

import argparse
import logging
import sys
import warnings
from dataclasses import replace
from pathlib import Path

from reenact.cache import WorkDir
from reenact.config import add_config_flags, build_config, config_to_json, load_config_file
from reenact.demo import demo_motion_path, demo_portrait
from reenact.errors import InputError, ReenactError
from reenact.pipeline import FLAG_ALIASES, RunConfig, reenact_video
from reenact.tracks_io import load_tracks



def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m reenact.run", description=__doc__.split("\n\n")[0])
    p.add_argument("source", type=Path, nargs="?", help="portrait image (JPEG, PNG, WebP)")
    p.add_argument("driving", type=Path, nargs="?", help="driving video (MP4, MOV, MKV, WebM, GIF, ...) or a folder "
                   "of frames; may be left out with --tracks")
    p.add_argument("--start", type=int, default=None, help="first driving frame to use (default 0)")
    p.add_argument("--end", type=int, default=None, help="one past the last driving frame to use (default: all)")
    p.add_argument("-o", "--output", type=Path, help="output MP4 (default: outputs/<source>--<driving>.mp4)")
    p.add_argument("--device", default=None, help="torch device for rendering: cpu, cuda, cuda:1, or auto (the "
                   "default: cuda for the 3D GAN path when a GPU is present, else cpu)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars or messages, only errors")
    p.add_argument("--allow-truncated", action="store_true", default=None,
                   help="process the readable part of a truncated driving video instead of stopping")
    p.add_argument("--pose-only", action="store_true",
                   help="follow the driver's head pose, keep the source's expression")
    p.add_argument("--expression-only", action="store_true",
                   help="follow the driver's expression, keep the source's head pose")
    p.add_argument("--work-dir", type=Path, help="folder for cached intermediate records (default: beside the output)")
    p.add_argument("--no-cache", action="store_true", help="recompute everything and store no intermediate records")
    p.add_argument("--export-tracks", type=Path,
                   help="also write the driving pose + expression: .csv (Live Link Face columns), .json or .npz")
    p.add_argument("--tracks", type=Path, help="driving pose + expression from a tracks file (.npz, .csv, .json) "
                   "instead of tracking DRIVING, which still gives the frames and the audio")
    p.add_argument("--config", type=Path, help="JSON file of options (as --print-config writes); flags override it")
    p.add_argument("--print-config", action="store_true", help="print the effective options as JSON and exit")
    p.add_argument("--demo", action="store_true", help="no inputs: the bundled portrait (Grace Hopper, public domain) "
                   "driven by the bundled motion (turns, nods, a smile, blinks, speech), with a comparison panel; "
                   "writes outputs/demo.mp4")
    add_config_flags(p, RunConfig, FLAG_ALIASES)
    return p


def resolve_config(args: argparse.Namespace) -> RunConfig:
    cfg = build_config(RunConfig, args, load_config_file(args.config) if args.config else None)
    if args.pose_only and args.expression_only:
        raise InputError("--pose-only and --expression-only exclude each other")
    if args.pose_only or args.expression_only:
        cfg = replace(cfg, transfer=replace(cfg.transfer, expression=not args.pose_only, pose=not args.expression_only))
    if args.device:
        cfg = replace(cfg, device=args.device)
    if args.allow_truncated:
        cfg = replace(cfg, allow_truncated=True)
    if args.start is not None or args.end is not None:
        cfg = replace(cfg, start=args.start or 0, end=args.end)
    return replace(cfg, progress=not args.quiet)


def demo_inputs(args: argparse.Namespace, cfg: RunConfig) -> RunConfig:
    """`--demo`: the bundled portrait and motion as the inputs, the default face model (the motion's), a
    comparison panel, outputs/demo.mp4 unless -o says otherwise."""
    if args.source or args.driving or args.tracks:
        raise InputError("--demo takes no SOURCE, DRIVING or --tracks: it brings its own")
    args.source, args.tracks = demo_portrait(), demo_motion_path()
    args.output = args.output or Path("outputs") / "demo.mp4"
    return replace(cfg, face=replace(cfg.face, model="mesh-offset"), output=replace(cfg.output, compare=True))


def output_path(args: argparse.Namespace) -> Path:
    driving = args.driving or args.tracks
    if driving is None:
        raise InputError("give a DRIVING video, or --tracks FILE")
    out = args.output or Path("outputs") / f"{args.source.stem}--{driving.stem}.mp4"
    if out.suffix.lower() != ".mp4":
        raise InputError(f"{out}: the output must be an .mp4 file")
    for given in (args.source, args.driving, args.tracks):
        if given is not None and given.exists() and out.resolve() == given.resolve():
            raise InputError(f"{out}: the output path is an input; choose another -o")
    return out


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.ERROR if args.quiet else logging.INFO, format="reenact: %(message)s")
    if args.quiet:
        warnings.simplefilter("ignore")
    try:
        cfg = resolve_config(args)
        if args.demo:
            cfg = demo_inputs(args, cfg)
        if args.print_config:
            print(config_to_json(cfg))
            return 0
        if args.source is None:
            raise InputError("give a SOURCE portrait and a DRIVING video (or try --demo)")
        if not args.source.is_file():
            raise InputError(f"{args.source}: no such image file")
        out = output_path(args)
        work = WorkDir(args.work_dir or out.parent / ".reenact-work", enabled=not args.no_cache)
        driving = load_tracks(args.tracks) if args.tracks else None
        reenact_video(args.source, args.driving, out, cfg, work, args.export_tracks, driving)
    except ReenactError as exc:
        print(f"reenact: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("reenact: interrupted; no output written (cached records are kept for a re-run)", file=sys.stderr)
        return 130
    logging.getLogger("reenact").info("wrote %s", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
