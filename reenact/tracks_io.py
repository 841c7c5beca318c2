"""Export and import of per-frame head pose + expression: Live Link Face style CSV, JSON, or the Motion npz.

CSV columns (the layout face-capture apps such as Live Link Face write): Timecode (HH:MM:SS:FF.mmm),
BlendShapeCount, the 52 ARKit shapes in capitalised ARKit order (EyeBlinkLeft, ..., TongueOut),
HeadYaw, HeadPitch, HeadRoll (radians, as those apps write). The ICT model's 53 coefficients map onto them
(`browInnerUp_L/_R` averaged into BrowInnerUp, `_L`/`_R` -> Left/Right); TongueOut, which the model lacks, is 0.
Import returns a Motion whose expression is the ICT code; position, scale and the reference shape are
not part of these formats (neutral values: frontal placement, unit scale, the canonical face).
"""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import torch

from reenact.canonical import load_canonical
from reenact.errors import InputError
from reenact.geometry import angles_to_matrix
from reenact.ict import MODEL
from reenact.structures import Expression, HeadPose, Motion, atomic_write

ARKIT = ("EyeBlinkLeft EyeLookDownLeft EyeLookInLeft EyeLookOutLeft EyeLookUpLeft EyeSquintLeft EyeWideLeft "
         "EyeBlinkRight EyeLookDownRight EyeLookInRight EyeLookOutRight EyeLookUpRight EyeSquintRight EyeWideRight "
         "JawForward JawRight JawLeft JawOpen MouthClose MouthFunnel MouthPucker MouthRight MouthLeft "
         "MouthSmileLeft MouthSmileRight MouthFrownLeft MouthFrownRight MouthDimpleLeft MouthDimpleRight "
         "MouthStretchLeft MouthStretchRight MouthRollLower MouthRollUpper MouthShrugLower MouthShrugUpper "
         "MouthPressLeft MouthPressRight MouthLowerDownLeft MouthLowerDownRight MouthUpperUpLeft MouthUpperUpRight "
         "BrowDownLeft BrowDownRight BrowInnerUp BrowOuterUpLeft BrowOuterUpRight CheekPuff CheekSquintLeft "
         "CheekSquintRight NoseSneerLeft NoseSneerRight TongueOut").split()
HEAD = ("HeadYaw", "HeadPitch", "HeadRoll")
FORMATS = (".csv", ".json", ".npz")


def arkit_column(name: str) -> int:
    """Column of an ICT/ARKit name: 'mouthSmile_L' -> MouthSmileLeft; sided ICT shapes of an unsided ARKit one
    ('cheekPuff_L', 'browInnerUp_R') -> that one."""
    base = re.sub(r"_([LR])$", lambda m: "Left" if m.group(1) == "L" else "Right", name)
    column = base[0].upper() + base[1:]
    return ARKIT.index(column if column in ARKIT else re.sub(r"(Left|Right)$", "", column))


def to_columns(expression: Expression) -> torch.Tensor:
    """ICT coefficients [T, 53] -> the 52 ARKit columns [T, 52] (sided shapes of one column averaged)."""
    _require_names(expression)
    cols = torch.tensor([arkit_column(n) for n in expression.names])
    out = torch.zeros(len(expression.coeffs), len(ARKIT)).index_add_(1, cols, expression.coeffs)
    return out / torch.zeros(len(ARKIT)).index_add_(0, cols, torch.ones(len(cols))).clamp_min(1)


def from_columns(values: torch.Tensor, names: list[str]) -> torch.Tensor:
    """The 52 ARKit columns [T, 52] -> coefficients [T, len(names)] of the named ICT shapes."""
    return values[:, [arkit_column(n) for n in names]]


def _require_names(expression: Expression) -> None:
    if expression.model != MODEL:
        raise InputError(f"tracks export needs ARKit coefficients (the {MODEL} face model, --face.model ict); "
                         f"this motion has {expression.model!r} codes")


def timecode(frame: int, fps: float) -> str:
    """HH:MM:SS:FF.mmm of a frame, as face-capture apps write it."""
    seconds = frame / fps
    whole = int(seconds)
    return f"{whole // 3600:02d}:{whole // 60 % 60:02d}:{whole % 60:02d}:{int(frame - whole * fps):02d}.000"


def save_tracks(motion: Motion, path: Path) -> None:
    """Write `motion` as CSV, JSON or npz (by suffix); CSV and JSON need ARKit coefficients."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise InputError(f"{path}: tracks are written as {', '.join(FORMATS)}")
    if suffix == ".npz":
        motion.save(path)
        return
    columns = to_columns(motion.expression)
    angles = motion.pose.angles()
    if suffix == ".csv":
        def write(tmp: Path) -> None:
            with open(tmp, "w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(["Timecode", "BlendShapeCount", *ARKIT, *HEAD])
                for t in range(len(motion)):
                    w.writerow([timecode(t, motion.fps), len(ARKIT), *(f"{v:.6f}" for v in columns[t].tolist()),
                                *(f"{v:.6f}" for v in torch.deg2rad(angles[t]).tolist())])
    else:
        doc = {"fps": motion.fps, "model": MODEL, "names": motion.expression.names,
               "frames": [{"time": t / motion.fps, "found": bool(motion.found[t]),
                           "coefficients": [round(v, 6) for v in motion.expression.coeffs[t].tolist()],
                           "yaw_pitch_roll_deg": [round(v, 4) for v in angles[t].tolist()]} for t in range(len(motion))]}

        def write(tmp: Path) -> None:
            tmp.write_text(json.dumps(doc))
    atomic_write(path, write)


def load_tracks(path: Path, names: list[str] | None = None) -> Motion:
    """Read tracks written by `save_tracks` (or a face-capture app's CSV); `names` orders CSV coefficients
    (default: the ICT model's 53 names, as the JSON or `data/ict_correspondence` order)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise InputError(f"{path}: no such tracks file")
    if suffix == ".npz":
        return Motion.load(path)
    try:
        if suffix == ".json":
            doc = json.loads(path.read_text())
            frames = doc["frames"]
            names, fps = doc["names"], float(doc["fps"])
            coeffs = torch.tensor([f["coefficients"] for f in frames], dtype=torch.float32)
            angles = torch.tensor([f["yaw_pitch_roll_deg"] for f in frames], dtype=torch.float32)
            found = torch.tensor([f["found"] for f in frames])
        elif suffix == ".csv":
            with open(path, newline="") as fh:
                rows = list(csv.DictReader(fh))
            names = names or ICT_NAMES
            values = torch.tensor([[float(r[c]) for c in ARKIT] for r in rows], dtype=torch.float32)
            coeffs = from_columns(values, names)
            angles = torch.rad2deg(torch.tensor([[float(r[c]) for c in HEAD] for r in rows], dtype=torch.float32))
            found, fps = torch.ones(len(rows), dtype=torch.bool), _fps_of(rows)
        else:
            raise InputError(f"{path}: tracks are read from {', '.join(FORMATS)}")
    except (KeyError, ValueError, TypeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a tracks file ({type(exc).__name__}: {exc})") from None
    n = len(coeffs)
    pose = HeadPose(angles_to_matrix(angles), torch.zeros(n, 3), torch.ones(n))
    return Motion(pose, Expression(coeffs, MODEL, list(names)), load_canonical().shape.clone(), found, fps, 0)


def _fps_of(rows: list[dict]) -> float:
    """Frame rate from the timecodes: the rows within the first whole second (30 when there is none)."""
    seconds = [r["Timecode"].split(":")[2] for r in rows]
    distinct = list(dict.fromkeys(seconds))
    return float(seconds.count(distinct[1])) if len(distinct) > 2 else 30.0


ICT_NAMES = ["browDown_L", "browDown_R", "browInnerUp_L", "browInnerUp_R", "browOuterUp_L", "browOuterUp_R",
             "cheekPuff_L", "cheekPuff_R", "cheekSquint_L", "cheekSquint_R", "eyeBlink_L", "eyeBlink_R",
             "eyeLookDown_L", "eyeLookDown_R", "eyeLookIn_L", "eyeLookIn_R", "eyeLookOut_L", "eyeLookOut_R",
             "eyeLookUp_L", "eyeLookUp_R", "eyeSquint_L", "eyeSquint_R", "eyeWide_L", "eyeWide_R", "jawForward",
             "jawLeft", "jawOpen", "jawRight", "mouthClose", "mouthDimple_L", "mouthDimple_R", "mouthFrown_L",
             "mouthFrown_R", "mouthFunnel", "mouthLeft", "mouthLowerDown_L", "mouthLowerDown_R", "mouthPress_L",
             "mouthPress_R", "mouthPucker", "mouthRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower",
             "mouthShrugUpper", "mouthSmile_L", "mouthSmile_R", "mouthStretch_L", "mouthStretch_R", "mouthUpperUp_L",
             "mouthUpperUp_R", "noseSneer_L", "noseSneer_R"]  # the ICT-FaceKit order (upstream vertex_indices.json)
