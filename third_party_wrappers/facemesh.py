"""Thin adapter over mediapipe 0.10.21's legacy solutions: FaceMesh, FaceDetection, SelfieSegmentation.

Landmarks come back in pixels: x to the right, y down, z away from the camera scaled like x
(mediapipe's normalised z is relative to the image width). No policy lives here: face choice,
gap filling and thresholds are in `reenact.track`.
"""
from __future__ import annotations

import contextlib
import io
import os
import sys

import numpy as np

REQUIRED_VERSION = "0.10.21"


@contextlib.contextmanager
def quiet_native_logs():
    """Send file descriptor 2 to /dev/null: mediapipe's C++ (absl/glog) logs bypass Python's sys.stderr."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _mediapipe():
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with contextlib.redirect_stderr(io.StringIO()), quiet_native_logs():
        import mediapipe as mp
    if mp.__version__ != REQUIRED_VERSION:
        raise ImportError(
            f"reenact needs mediapipe=={REQUIRED_VERSION} (the last release that ships the face models and the "
            f"legacy FaceMesh API); found {mp.__version__}. Install it with: pip install mediapipe=={REQUIRED_VERSION}"
        )
    return mp


class FaceMesh:
    """478 refined face landmarks per face; `static=True` detects on every image, else tracks a video."""

    def __init__(self, static: bool, max_faces: int = 4, min_confidence: float = 0.5):
        mp = _mediapipe()
        with quiet_native_logs():
            self._mesh = mp.solutions.face_mesh.FaceMesh(
                static_image_mode=static,
                max_num_faces=max_faces,
                refine_landmarks=True,
                min_detection_confidence=min_confidence,
                min_tracking_confidence=min_confidence,
            )
        self._calls = 0

    def __call__(self, rgb: np.ndarray) -> list[np.ndarray]:
        """All faces in an RGB uint8 [H, W, 3] image, each float32 [478, 3] in pixels."""
        h, w = rgb.shape[:2]
        if self._calls < 2:  # the graph logs its warnings on the first frames
            with quiet_native_logs():
                result = self._mesh.process(np.ascontiguousarray(rgb))
        else:
            result = self._mesh.process(np.ascontiguousarray(rgb))
        self._calls += 1
        faces = result.multi_face_landmarks or []
        scale = np.array([w, h, w], np.float32)
        return [np.array([(p.x, p.y, p.z) for p in f.landmark], np.float32) * scale for f in faces]

    def close(self) -> None:
        with quiet_native_logs():
            self._mesh.close()

    def __enter__(self) -> "FaceMesh":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def face_detection_scores(rgb: np.ndarray) -> tuple[float, float]:
    """Best BlazeFace score of the short-range and of the full-range detector (0 when none fires)."""
    mp = _mediapipe()
    scores = []
    for model in (0, 1):
        with quiet_native_logs(), mp.solutions.face_detection.FaceDetection(
                model_selection=model, min_detection_confidence=0.1) as det:
            found = det.process(np.ascontiguousarray(rgb)).detections or []
            scores.append(max((d.score[0] for d in found), default=0.0))
    return scores[0], scores[1]


def segment_person(rgb: np.ndarray) -> np.ndarray:
    """Soft person mask (hair, face, body) float32 [H, W] in [0, 1] for one RGB uint8 image."""
    mp = _mediapipe()
    with quiet_native_logs(), mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0) as seg:
        return seg.process(np.ascontiguousarray(rgb)).segmentation_mask.astype(np.float32)


def tessellation_edges() -> np.ndarray:
    """Undirected edges [E, 2] of mediapipe's 468-point face tessellation."""
    edges = _mediapipe().solutions.face_mesh.FACEMESH_TESSELATION
    return np.unique(np.sort(np.array(list(edges), np.int64), axis=1), axis=0)
