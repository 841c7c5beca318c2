"""Thin adapter over mediapipe 0.10.21's legacy solutions: FaceMesh, FaceDetection, SelfieSegmentation.

Landmarks come back in pixels: x to the right, y down, z away from the camera scaled like x
(mediapipe's normalised z is relative to the image width). No policy lives here: face choice,
gap filling and thresholds are in `reenact.track`.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import threading

import numpy as np

REQUIRED_VERSION = "0.10.21"


_native_logs_hidden = False
_IMPORT_LOCK = threading.Lock()


def hide_native_logs() -> None:
    """Route file descriptor 2 to /dev/null for good, keeping Python's sys.stderr on the real stream.

    mediapipe's graph threads log (absl) to fd 2 at unpredictable moments; this keeps a bad-input
    error to one line. Logging handlers already writing to the old sys.stderr move to the new one (else the
    run's messages would go to /dev/null). Set REENACT_NATIVE_LOGS=1 to see those logs.
    """
    global _native_logs_hidden
    if _native_logs_hidden or os.environ.get("REENACT_NATIVE_LOGS") == "1":
        return
    sys.stderr.flush()
    real = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    old = sys.stderr
    sys.stderr = io.TextIOWrapper(os.fdopen(real, "wb", buffering=0), write_through=True,
                                  encoding=sys.stderr.encoding, errors="backslashreplace")
    for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
        for handler in getattr(logger, "handlers", []):  # handlers made earlier keep writing where the user sees
            if isinstance(handler, logging.StreamHandler) and handler.stream is old:
                handler.setStream(sys.stderr)
    _native_logs_hidden = True


def _mediapipe():
    """The mediapipe module, imported once with its import-time chatter silenced. Under a lock: the tracker runs
    in threads, and interleaved `redirect_stderr`s would restore each other's StringIO as sys.stderr for good,
    swallowing every later error message."""
    with _IMPORT_LOCK:
        hide_native_logs()
        with contextlib.redirect_stderr(io.StringIO()):
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
        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=static,
            max_num_faces=max_faces,
            refine_landmarks=True,
            min_detection_confidence=min_confidence,
            min_tracking_confidence=min_confidence,
        )

    def __call__(self, rgb: np.ndarray) -> list[np.ndarray]:
        """All faces in an RGB uint8 [H, W, 3] image, each float32 [478, 3] in pixels."""
        h, w = rgb.shape[:2]
        result = self._mesh.process(np.ascontiguousarray(rgb))
        faces = result.multi_face_landmarks or []
        scale = np.array([w, h, w], np.float32)
        return [np.array([(p.x, p.y, p.z) for p in f.landmark], np.float32) * scale for f in faces]

    def close(self) -> None:
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
        with mp.solutions.face_detection.FaceDetection(
                model_selection=model, min_detection_confidence=0.1) as det:
            found = det.process(np.ascontiguousarray(rgb)).detections or []
            scores.append(max((d.score[0] for d in found), default=0.0))
    return scores[0], scores[1]


def segment_person(rgb: np.ndarray) -> np.ndarray:
    """Soft person mask (hair, face, body) float32 [H, W] in [0, 1] for one RGB uint8 image."""
    mp = _mediapipe()
    with mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0) as seg:
        return seg.process(np.ascontiguousarray(rgb)).segmentation_mask.astype(np.float32)


def tessellation_edges() -> np.ndarray:
    """Undirected edges [E, 2] of mediapipe's 468-point face tessellation."""
    edges = _mediapipe().solutions.face_mesh.FACEMESH_TESSELATION
    return np.unique(np.sort(np.array(list(edges), np.int64), axis=1), axis=0)
