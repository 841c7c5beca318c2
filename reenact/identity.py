"""Identity similarity with a face-recognition network the user installs (none ships with reenact).

Two backends (`third_party_wrappers.face_id`): an ArcFace ONNX file given by path (onnxruntime), or
the `face_recognition_models` ResNet through dlib. Faces are located by our tracked landmarks: a
box for dlib, a five-point similarity alignment to ArcFace's 112x112 template for ONNX. Similarity
is the cosine of the embeddings (1: same image; the same person typically scores well above a stranger).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from reenact.canonical import IRIS_CENTRES
from reenact.crop import MOUTH_CORNERS, warp_affine
from reenact.errors import MissingAssetError
from reenact.geometry import similarity_fit

UNAVAILABLE = ('identity similarity: unavailable (pip install "reenact[eval]", '
               "or pass --arcface model.onnx with onnxruntime)")
NOSE_TIP = 1
FIVE_POINTS = (*IRIS_CENTRES, NOSE_TIP, *MOUTH_CORNERS)  # image-left eye, image-right eye, nose, mouth corners
ARCFACE_TEMPLATE = torch.tensor([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                                 [41.5493, 92.3655], [70.7299, 92.2041]])  # insightface's 112x112 targets
ARCFACE_SIZE = 112

Embedder = Callable[[np.ndarray, torch.Tensor], np.ndarray]  # (frames uint8 [N, H, W, 3], landmarks) -> [N, D]


def arcface_alignment(landmarks: torch.Tensor) -> torch.Tensor:
    """Image-from-crop 2x3 maps [N, 2, 3] that put each face's five points on the ArcFace template."""
    pad = torch.zeros(len(landmarks), 5, 1, dtype=torch.float64)
    template = torch.cat([ARCFACE_TEMPLATE.double().expand(len(landmarks), -1, -1), pad], -1)
    points = torch.cat([landmarks[:, list(FIVE_POINTS), :2].double(), pad], -1)
    scale, rot, trans = similarity_fit(template, points)
    return torch.cat([scale[:, None, None] * rot[:, :2, :2], trans[:, :2, None]], -1).float()


def aligned_crops(frames: np.ndarray, landmarks: torch.Tensor) -> np.ndarray:
    """ArcFace crops uint8 [N, 112, 112, 3] of one face per frame."""
    images = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    crops = warp_affine(images, arcface_alignment(landmarks), (ARCFACE_SIZE, ARCFACE_SIZE))
    return crops.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()


def _boxes(landmarks: torch.Tensor) -> list[tuple[int, int, int, int]]:
    lo, hi = landmarks[..., :2].amin(1), landmarks[..., :2].amax(1)
    return [tuple(int(v) for v in (*a, *b)) for a, b in zip(lo.round().tolist(), hi.round().tolist())]


def load_embedder(arcface: Path | None = None) -> tuple[str, Embedder] | None:
    """(name, embedder) of the first identity network available: `arcface` if given, else dlib's; None if none."""
    if arcface is not None:
        if not Path(arcface).is_file():
            raise MissingAssetError(f"{arcface}: no such ArcFace ONNX file")
        try:
            from third_party_wrappers.face_id import OnnxFaceNet

            net = OnnxFaceNet(str(arcface))
        except ImportError:
            return None
        return f"arcface ({Path(arcface).name})", lambda frames, lm: net(aligned_crops(frames, lm))
    try:
        from third_party_wrappers.face_id import DlibFaceNet

        dlib_net = DlibFaceNet()
    except ImportError:
        return None
    return "dlib resnet (face_recognition_models)", lambda frames, lm: np.stack(
        [dlib_net(f, box) for f, box in zip(frames, _boxes(lm))])


def cosine_similarity(reference: np.ndarray, embeddings: np.ndarray) -> float:
    """Mean cosine similarity of embeddings [N, D] to one reference embedding [D]."""
    ref = reference / np.linalg.norm(reference)
    emb = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    return float((emb @ ref).mean())
