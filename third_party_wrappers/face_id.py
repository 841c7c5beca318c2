"""Thin adapters over optional face-recognition networks; neither is a dependency of reenact.

`DlibFaceNet`: the ResNet of the `face_recognition_models` package run through dlib (128-d; the model files
are located by `third_party_wrappers.dlib_face`).
`OnnxFaceNet`: an ArcFace-style ONNX file run with onnxruntime (aligned 112x112 RGB crops in, N-d out).
Both raise ImportError when their packages are not installed.
"""
from __future__ import annotations

import numpy as np

from third_party_wrappers.dlib_face import LANDMARKS_5, RESNET, import_dlib, model_file


class DlibFaceNet:
    """Face descriptors of one face per image, located by a box; dlib finds its own five landmarks."""

    def __init__(self):
        dlib = import_dlib()
        self._dlib = dlib
        self._shape = dlib.shape_predictor(model_file(LANDMARKS_5))
        self._net = dlib.face_recognition_model_v1(model_file(RESNET))

    def __call__(self, rgb: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        """128 floats for the face inside `box` (left, top, right, bottom) of an RGB uint8 image."""
        rgb = np.ascontiguousarray(rgb)
        shape = self._shape(rgb, self._dlib.rectangle(*box))
        return np.array(self._net.compute_face_descriptor(rgb, shape), np.float32)


class OnnxFaceNet:
    """An ONNX face-embedding network with one image input (NCHW or NHWC float32, (x - 127.5) / 127.5)."""

    def __init__(self, path: str):
        import onnxruntime

        self._session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0]

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        """Embeddings [N, D] of aligned RGB uint8 crops [N, 112, 112, 3]."""
        x = (crops.astype(np.float32) - 127.5) / 127.5
        if self._input.shape[1] == 3:
            x = x.transpose(0, 3, 1, 2)
        batches = np.split(x, len(x)) if self._input.shape[0] == 1 else [x]  # some exports fix the batch at 1
        return np.concatenate([self._session.run(None, {self._input.name: np.ascontiguousarray(b)})[0]
                               for b in batches])
