import numpy as np
import pytest
import torch

from reenact.errors import CacheError
from reenact.structures import Crop, Expression, HeadPose, Motion, Tracks


def _motion(t=5):
    pose = HeadPose(torch.eye(3).expand(t, 3, 3).clone(), torch.randn(t, 3), torch.rand(t) + 1)
    expr = Expression(torch.randn(t, 12), "mesh-offset", [])
    return Motion(pose, expr, torch.randn(478, 3), torch.ones(t, dtype=torch.bool), 30.0, 2)


def test_round_trip_nested(tmp_path):
    m = _motion()
    m.save(tmp_path / "m.npz")
    back = Motion.load(tmp_path / "m.npz")
    assert back.ref == 2 and back.fps == 30.0 and back.expression.model == "mesh-offset"
    torch.testing.assert_close(back.pose.translation, m.pose.translation)
    torch.testing.assert_close(back.expression.coeffs, m.expression.coeffs)


def test_wrong_schema_and_corruption_raise_cache_error(tmp_path):
    Crop(torch.randn(2, 3), 512).save(tmp_path / "c.npz")
    with pytest.raises(CacheError):
        Tracks.load(tmp_path / "c.npz")
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(CacheError):
        Crop.load(tmp_path / "bad.npz")


def test_crop_inverse():
    a = torch.tensor([[0.5, 0.1, 10.0], [-0.1, 0.5, 20.0]])
    crop = Crop(a, 256)
    p = torch.tensor([3.0, 4.0, 1.0])
    q = torch.cat([a @ p, torch.ones(1)])
    np.testing.assert_allclose((crop.image_from_crop @ q).numpy(), p[:2].numpy(), atol=1e-4)
