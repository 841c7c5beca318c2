import numpy as np
import torch

from reenact.geometry import angles_to_matrix, head_angles, matrix_to_rotvec, rotvec_to_matrix, similarity_fit


def test_similarity_fit_recovers_known_transform():
    rng = np.random.default_rng(0)
    src = rng.normal(size=(4, 50, 3))
    rot = np.linalg.qr(rng.normal(size=(4, 3, 3)))[0]
    rot *= np.sign(np.linalg.det(rot))[:, None, None]
    dst = 1.7 * src @ rot.transpose(0, 2, 1) + np.array([3.0, -2.0, 5.0])
    s, r, t = similarity_fit(src, dst)
    np.testing.assert_allclose(s, 1.7, atol=1e-6)
    np.testing.assert_allclose(r, rot, atol=1e-6)
    np.testing.assert_allclose(t, np.broadcast_to([3.0, -2.0, 5.0], t.shape), atol=1e-6)


def test_weights_ignore_outliers():
    src = torch.randn(60, 3, dtype=torch.float64)
    dst = src.clone() * 2
    dst[:5] += 100.0
    w = torch.ones(60, dtype=torch.float64)
    w[:5] = 0
    s, r, t = similarity_fit(src, dst, w)
    assert abs(float(s) - 2) < 1e-9 and torch.allclose(r, torch.eye(3, dtype=torch.float64), atol=1e-9)


def test_head_angles_round_trip_and_signs():
    angles = torch.tensor([[20.0, -10.0, 5.0], [-45.0, 30.0, -20.0], [0.0, 0.0, 0.0]])
    torch.testing.assert_close(head_angles(angles_to_matrix(angles)), angles, atol=1e-4, rtol=0)
    # yaw > 0: the face normal (head +z) points toward the image right (+x)
    normal = angles_to_matrix(torch.tensor([30.0, 0.0, 0.0])) @ torch.tensor([0.0, 0.0, 1.0])
    assert normal[0] > 0.4 and normal[2] < 0  # image z points away from the camera


def test_rotvec_round_trip():
    rv = torch.tensor([[0.1, -0.2, 0.3], [1.0, 0.5, -0.7]])
    torch.testing.assert_close(matrix_to_rotvec(rotvec_to_matrix(rv)), rv, atol=1e-5, rtol=0)
