"""Motion-fidelity series for the tests, by name; the measures themselves live in `reenact.evaluate`."""
from __future__ import annotations

import torch

from reenact.evaluate import face_series, track_file
from reenact.evaluate import pearson, shape_distance  # noqa: F401 (re-exported for the tests)
from reenact.expression import MeshOffsetModel


def motion_series(video) -> dict[str, torch.Tensor]:
    """Yaw, pitch (deg), mouth opening and median head-frame shape of the face tracked in a video."""
    series = face_series(track_file(video), MeshOffsetModel(), ref=0)
    return {"yaw": series.angles[:, 0], "pitch": series.angles[:, 1], "mouth": series.mouth, "shape": series.shape}
