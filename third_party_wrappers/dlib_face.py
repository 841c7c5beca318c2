"""Thin adapter over dlib's face models, an observer independent of the pipeline's mediapipe tracker.

The model files are those of the `face_recognition_models` package (HOG detection is built into dlib; the
68-landmark predictor and the 128-d face-recognition ResNet are `.dat` files). The package is located but never
imported: its `__init__` imports `pkg_resources`, which current setuptools no longer ships. Everything here
raises ImportError naming `pip install "reenact[eval]"` when dlib or the model files are not installed.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from PIL import Image

INSTALL = 'pip install "reenact[eval]"'
LANDMARKS_68 = "shape_predictor_68_face_landmarks.dat"
LANDMARKS_5 = "shape_predictor_5_face_landmarks.dat"
RESNET = "dlib_face_recognition_resnet_model_v1.dat"
DETECT_SIDE = 640  # frames are shrunk to this longest side before the detector upsamples them once


def import_dlib():
    """The dlib module, or ImportError with the install hint."""
    try:
        import dlib
    except ImportError:
        raise ImportError(f"dlib is not installed ({INSTALL})") from None
    return dlib


def model_file(name: str) -> str:
    """Path of one of the `.dat` files in the installed `face_recognition_models` package folder."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"face_recognition_models is not installed ({INSTALL})")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / name
    if not path.is_file():
        raise ImportError(f"{path}: missing from the face_recognition_models package (reinstall: {INSTALL})")
    return str(path)


def _centre(points: np.ndarray) -> np.ndarray:
    return (points.min(0) + points.max(0)) / 2


class DlibFaces:
    """One face per frame: HOG detection, 68 landmarks, 128-d descriptors (dlib's same-person threshold: 0.6)."""

    def __init__(self):
        dlib = import_dlib()
        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(model_file(LANDMARKS_68))
        self._net = dlib.face_recognition_model_v1(model_file(RESNET))

    def detect(self, rgb: np.ndarray) -> np.ndarray | None:
        """Box (left, top, right, bottom) float px of the largest face, or None. Detection runs on a copy at most
        DETECT_SIDE px long, upsampled once where nothing is found at that size (faces under ~80 px there)."""
        h, w = rgb.shape[:2]
        scale = min(1.0, DETECT_SIDE / max(h, w))
        small = rgb if scale == 1 else np.asarray(Image.fromarray(rgb).resize(
            (round(w * scale), round(h * scale)), Image.BILINEAR))
        found = self._detector(small, 0) or self._detector(small, 1)
        boxes = [(b.left(), b.top(), b.right(), b.bottom()) for b in found]
        if not boxes:
            return None
        box = np.array(max(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1])), np.float64)
        return box / scale

    def track(self, frames: Iterable[np.ndarray], every: int = 1, max_carry: int = 30
              ) -> Iterator[tuple[bool, np.ndarray | None, np.ndarray | None]]:
        """Per RGB uint8 frame: (detected, landmarks [68, 2] float32 px or None, descriptor [128] or None).

        Where the frontal detector misses (a turned head), the last box is carried over, re-centred on the
        previous landmarks with the offset it had from them when detected, for at most `max_carry` frames in a
        row. Descriptors are computed on the frames whose index is a multiple of `every` (where a face is found).
        """
        box, offset, previous, carried = None, None, None, 0
        for i, rgb in enumerate(frames):
            rgb = np.ascontiguousarray(rgb)
            found = self.detect(rgb)
            if found is not None:
                box, carried = found, 0
            elif previous is not None and carried < max_carry:
                size = box[2:] - box[:2]
                box = np.concatenate([_centre(previous) + offset - size / 2, _centre(previous) + offset + size / 2])
                carried += 1
            else:
                previous = None
                yield False, None, None
                continue
            shape = self._predictor(rgb, self._dlib.rectangle(*(int(round(v)) for v in box)))
            previous = np.array([(p.x, p.y) for p in shape.parts()], np.float32)
            if found is not None:
                offset = (box[:2] + box[2:]) / 2 - _centre(previous)
            descriptor = np.array(self._net.compute_face_descriptor(rgb, shape), np.float32) if i % every == 0 else None
            yield found is not None, previous, descriptor
