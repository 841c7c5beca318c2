"""Camera labels match the official LookAtPoseSampler (oracle config.json) and invert cleanly."""
import math

import torch

from reenact.eg3d import camera


def test_lookat_labels_match_official(oracle_config):
    for name, (yaw, pitch) in oracle_config['camera_defs_yaw_pitch_rad'].items():
        ref = torch.tensor(oracle_config['cameras'][name])
        assert (camera.lookat_label(yaw, pitch)[0] - ref).abs().max() <= 1e-6, name


def test_frontal_and_batch(oracle_config):
    ref = torch.tensor(oracle_config['cameras']['front'])
    labels = camera.frontal_label(3)
    assert labels.shape == (3, 25) and (labels - ref).abs().max() <= 1e-6
    both = camera.lookat_label([0.0, 0.3490658503988659], [0.0, 0.0])
    assert (both[1] - torch.tensor(oracle_config['cameras']['yaw_plus20deg'])).abs().max() <= 1e-6


def test_yaw_pitch_roundtrip():
    yaw = torch.tensor([-0.6, -0.1, 0.0, 0.25, 0.7])
    pitch = torch.tensor([0.3, -0.2, 0.0, 0.1, -0.4])
    y2, p2 = camera.yaw_pitch_from_label(camera.lookat_label(yaw, pitch))
    assert (y2 - yaw).abs().max() < 1e-5 and (p2 - pitch).abs().max() < 1e-5


def test_mirroring():
    label = camera.lookat_label(0.4, -0.2)
    mirrored = camera.mirror_label(label)
    assert torch.allclose(mirrored, camera.lookat_label(-0.4, -0.2), atol=1e-6)
    assert torch.equal(camera.mirror_label(mirrored), label)


def test_label_from_rotation(oracle_config):
    frontal = camera.label_from_rotation(torch.diag(torch.tensor([1.0, -1.0, -1.0])))
    assert (frontal[0] - torch.tensor(oracle_config['cameras']['front'])).abs().max() <= 1e-6
    refs = torch.tensor([oracle_config['cameras'][n] for n in ('yaw_plus20deg', 'yaw0.4_pitch-0.2rad')])
    R = refs[:, :16].view(-1, 4, 4)[:, :3, :3].transpose(1, 2)      # cam_from_head = cam2world^T
    assert (camera.label_from_rotation(R) - refs).abs().max() <= 1e-5


def test_head_rotation_is_inverse_camera_orbit():
    """A head yawing to image-right (+a about +y) is seen like a camera orbiting toward -x."""
    a = 0.3
    head_yaw = torch.tensor([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    R = torch.diag(torch.tensor([1.0, -1.0, -1.0])) @ head_yaw
    c2w = camera.label_from_rotation(R)[0, :16].view(4, 4)
    assert torch.allclose(c2w[:3, :3], R.T)
    origin, forward = c2w[:3, 3], c2w[:3, 2]
    assert abs(origin.norm().item() - camera.FFHQ_RADIUS) < 1e-5
    to_pivot = torch.tensor(camera.FFHQ_PIVOT) - origin
    assert torch.allclose(to_pivot / to_pivot.norm(), forward, atol=1e-6)
    yaw, pitch = camera.yaw_pitch_from_label(camera.label_from_rotation(R))
    assert -a < yaw.item() < 0 and abs(pitch.item()) < 1e-6


def test_focal_fov():
    assert abs(camera.focal_to_fov(camera.FFHQ_FOCAL) - 13.37) < 0.01
    assert abs(camera.fov_to_focal(camera.focal_to_fov(4.2647)) - 4.2647) < 1e-9
    assert abs(camera.official_fov_to_focal(18.837) - 4.2647) < 2e-3
