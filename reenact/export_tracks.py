"""`python -m reenact.export_tracks VIDEO -o tracks.csv`: track a video on its own and write its pose + expression.

CSV (Live Link Face columns) and JSON hold the ICT-FaceKit model's named coefficients, so they default to it;
.npz holds a Motion of any face model. Bad input: one line on stderr, exit code 2.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from reenact.driving import driving_motion
from reenact.errors import InputError, ReenactError
from reenact.expression import FaceModelConfig, load_face_model
from reenact.track import track_frames
from reenact.tracks_io import FORMATS, save_tracks
from third_party_wrappers.video import open_video


def main(argv: list[str] | None = None) -> int:
    """Track a video on its own and write its pose + expression."""
    p = argparse.ArgumentParser(prog="python -m reenact.export_tracks", description=__doc__.split("\n\n")[0])
    p.add_argument("video", type=Path, help="driving video or folder of frames")
    p.add_argument("-o", "--output", type=Path, required=True, help="tracks file: .csv (Live Link Face), .json or .npz")
    p.add_argument("--face-model", choices=("auto", "ict", "mesh-offset"),
                   help="face model (default: ict for CSV and JSON, which hold its named coefficients; else the run's)")
    p.add_argument("--face-path", help="ICT-FaceKit model file or folder")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="reenact: %(message)s")
    try:
        if args.output.suffix.lower() not in FORMATS:
            raise InputError(f"{args.output}: tracks are written as {', '.join(FORMATS)}")
        named = args.output.suffix.lower() in (".csv", ".json")
        model = load_face_model(FaceModelConfig(args.face_model or ("ict" if named else FaceModelConfig().model),
                                                args.face_path))
        with open_video(args.video) as reader:
            info = reader.info
            tracks = track_frames(reader.chunks(64), info.n_frames, info.fps, name=str(args.video),
                                  progress=not args.quiet)
        save_tracks(driving_motion(tracks, model, name=str(args.video))[0], args.output)
    except ReenactError as exc:
        print(f"reenact: {exc}", file=sys.stderr)
        return 2
    logging.getLogger("reenact").info("wrote %s (face model: %s)", args.output, model.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
