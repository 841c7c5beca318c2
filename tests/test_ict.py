"""ICT-FaceKit model: importer on the real upstream files, locating, fitting against synthetic ground truth."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from reenact.errors import MissingAssetError
from reenact.expression import FaceModelConfig, MeshOffsetModel, load_face_model
from reenact.geometry import angles_to_matrix, head_angles
from reenact.data.ict_render import render_head
from reenact.ict import MODEL, IctModel
from reenact.ict_basis import EYEBALLS, GAZE_DEGREES, correspondence, find_model, with_gaze
from reenact.pose import estimate_pose, to_image
from reenact.structures import Expression, HeadPose, Tracks
from reenact.track import track_image
from third_party_wrappers.ict_facekit import expression_names, read_obj, read_packed, read_upstream


@pytest.fixture(scope="session")
def ict_dir(shared):
    return shared / "facemodels" / "ict-facekit"


@pytest.fixture(scope="session")
def model(ict_dir, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REENACT_CACHE", str(cache))
        return IctModel.load(ict_dir / "ict_face_model.npz")


def test_upstream_objs_match_packed_model(ict_dir, tmp_path):
    folder = tmp_path / "FaceXModel"
    folder.mkdir()
    for name in ("generic_neutral_mesh.obj", "identity000.obj", "jawOpen.obj", "mouthSmile_L.obj",
                 "vertex_indices.json"):
        shutil.copy(ict_dir / name, folder / name)
    upstream = read_upstream(tmp_path, n_identities=1, expressions=["jawOpen", "mouthSmile_L"])
    packed = read_packed(ict_dir / "ict_face_model.npz")
    assert len(expression_names(tmp_path)) == 53 and expression_names(tmp_path) == packed["expression_names"]
    np.testing.assert_allclose(upstream["neutral"], packed["neutral"], atol=1e-4)
    np.testing.assert_array_equal(upstream["polygons"], packed["polygons"])
    names = packed["expression_names"]
    for i, name in enumerate(["jawOpen", "mouthSmile_L"]):
        np.testing.assert_allclose(upstream["expression_modes"][i], packed["expression_modes"][names.index(name)],
                                   atol=2e-3)  # the packed modes are float16
    np.testing.assert_allclose(upstream["identity_modes"][0], packed["identity_modes"][0], atol=2e-3)
    assert read_obj(folder / "jawOpen.obj").shape == (26719, 3)


def test_locating_the_model(ict_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("REENACT_CACHE", str(tmp_path))
    monkeypatch.delenv("REENACT_FACE_MODEL", raising=False)
    assert find_model() is None
    assert isinstance(load_face_model(FaceModelConfig("auto")), MeshOffsetModel)
    with pytest.raises(MissingAssetError, match="reenact.assets download ict"):
        load_face_model(FaceModelConfig("ict"))
    monkeypatch.setenv("REENACT_FACE_MODEL", str(ict_dir))
    assert find_model() == ict_dir / "ict_face_model.npz"
    assert load_face_model(FaceModelConfig("auto")).name == "ict-facekit"
    assert list(tmp_path.glob("ict-landmarks-*.npz")), "the compact landmark basis is cached"


def test_basis_is_in_the_head_frame(model):
    b = model.basis
    eye = (b.neutral[263] - b.neutral[33]).norm()
    assert abs(eye - 1) < 0.05 and b.neutral[[33, 263]].mean(0).abs().max() < 0.1
    assert b.neutral[13, 1] < 0 < b.neutral[10, 1] and b.neutral[4, 2] > b.neutral[33, 2]  # mouth low, nose out
    jaw = b.expression[b.names.index("jawOpen")]
    assert jaw[152, 1] < -0.1  # opening the jaw lowers the chin
    table = correspondence()  # the calibrated tracker bias is a correction, not a second model
    assert table["offset_neutral"].norm(dim=-1).median() < 0.05
    assert table["offset_expression"].shape == b.expression.shape and table["offset_view"].shape == (5, 478, 3)
    curves = table["response"]  # tracked motion of a blend shape at weights 0 .. 1: increasing from 0 to 1
    assert (curves.diff(dim=1) >= 0).all() and (curves[:, 0] == 0).all() and (curves[:, -1] == 1).all()


def test_gaze_turns_the_eyeballs(ict_dir, model):
    full = read_packed(ict_dir / "ict_face_model.npz")
    names = full["expression_names"]
    neutral = torch.from_numpy(full["neutral"])
    coeffs = torch.zeros(2, 53)
    coeffs[0, names.index("eyeLookOut_L")] = 1  # the subject's left eye (+x) looks outward ...
    coeffs[1, names.index("eyeLookUp_R")] = 1  # ... the right eye up
    turned = with_gaze(neutral.expand(2, -1, -1), coeffs, names)
    left, right = EYEBALLS
    front = neutral[left, 2].argmax()  # the centre of the left cornea
    radius = (neutral[left][front] - neutral[left].mean(0)).norm()
    moved = turned[0, left][front] - neutral[left][front]
    assert moved[0] > 0.6 * radius * np.sin(np.radians(GAZE_DEGREES)) and moved[1].abs() < 1e-3
    assert (turned[1, right][:, 1] - neutral[right, 1]).max() > 0.5  # up, in cm
    torch.testing.assert_close(turned[0, right], neutral[right])
    torch.testing.assert_close(turned[:, :left.start], neutral[:left.start].expand(2, -1, -1))  # lids: blend shapes
    b = model.basis  # the landmark basis moves the irises with gaze: 473 is the subject's left iris centre
    assert b.expression[names.index("eyeLookOut_L"), 473, 0] > 0.04
    assert b.expression[names.index("eyeLookIn_L"), 473, 0] < -0.04
    assert b.expression[names.index("eyeLookUp_R"), 468, 1] > 0.02


def synthetic(model: IctModel, n: int, seed: int = 0):
    """Landmarks of a random identity, smooth sparse expressions (keyframes every 8 frames) and random poses,
    as the tracker reports them per the model (calibrated bias), with tracker-like noise. Returns (tracks, true
    coefficients, true yaw/pitch/roll)."""
    g = torch.Generator().manual_seed(seed)
    identity = torch.randn(100, generator=g) * 0.8
    keys = (torch.rand(n // 8 + 2, 53, generator=g)).mul(torch.rand(n // 8 + 2, 53, generator=g) < 0.1)
    coeffs = torch.nn.functional.interpolate(keys.T[None], scale_factor=8, mode="linear")[0].T[:n].contiguous()
    angles = torch.randn(n, 3, generator=g) * torch.tensor([15.0, 8.0, 5.0])
    pose = HeadPose(angles_to_matrix(angles), torch.tensor([320.0, 240.0, 0.0]) + torch.randn(n, 3, generator=g),
                    torch.full((n,), 100.0))
    points = to_image(model.identity_mesh(identity, coeffs, pose.rotation), pose)
    points = points + torch.randn(points.shape, generator=g) * torch.tensor([0.3, 0.3, 1.0])
    return Tracks(points, torch.ones(n, dtype=torch.bool), 480, 640, 30.0), coeffs, angles


def test_fit_recovers_synthetic_expressions_and_pose(model):
    tracks, coeffs, angles = synthetic(model, 60)
    pose, shape, expression = model.fit(tracks, estimate_pose(tracks), 0)
    assert expression.model == MODEL and len(expression.names) == 53 and expression.coeffs.shape == (60, 53)
    assert expression.coeffs.min() >= 0 and expression.coeffs.max() <= 1
    err = (expression.coeffs - coeffs).abs()
    for name in ("jawOpen", "eyeBlink_L", "eyeBlink_R"):
        assert err[:, expression.names.index(name)].mean() < 0.1, name  # the bench's target
    assert err.mean() < 0.06
    assert (expression.coeffs[coeffs == 0] == 0).float().mean() > 0.7  # the L1 term keeps inactive shapes at 0
    names = expression.names
    for side in "LR":  # horizontal gaze, read from the irises
        gaze = [x[:, names.index(f"eyeLookOut_{side}")] - x[:, names.index(f"eyeLookIn_{side}")]
                for x in (expression.coeffs, coeffs)]
        assert torch.corrcoef(torch.stack(gaze))[0, 1] > 0.9
    assert (head_angles(pose.rotation) - angles).abs().median() < 1.0
    # mesh() of the reference frame's code gives back its tracked landmarks
    ref = to_image(model.mesh(shape, Expression(expression.coeffs[:1], MODEL, expression.names)), pose)
    torch.testing.assert_close(ref[0], tracks.landmarks[0], atol=1e-2, rtol=0)


def test_single_image_fit(model):
    tracks, coeffs, _ = synthetic(model, 1, seed=3)
    _, _, expression = model.fit(tracks, estimate_pose(tracks), 0)
    assert (expression.coeffs - coeffs).abs().mean() < 0.1


def test_mesh_rejects_other_codes(model):
    with pytest.raises(Exception, match="cannot drive"):
        model.mesh(torch.zeros(478, 3), Expression(torch.zeros(1, 1434), "mesh-offset", []))


def test_pose_reads_the_head_turns_of_tracked_renders(ict_dir):
    """FaceMesh on orthographic renders of two ICT heads at known angles (yaw -20..20 x pitch -15..15): the pose
    stage, with the tracker's view bias, reads pitch and yaw changes within 10 % (the plain canonical fit: 0.82 of
    the pitch)."""
    full = read_packed(ict_dir / "ict_face_model.npz")
    angles = torch.tensor([[y, p, 0.0] for y in (-20, 0, 20) for p in (-15, 0, 15)])
    g = torch.Generator().manual_seed(5)
    change = []
    for _ in range(2):
        images = render_head(full, torch.randn(len(full["identity_modes"]), generator=g) * 0.7, angles)
        tracks = Tracks(torch.stack([track_image(im).landmarks[0] for im in images]),
                        torch.ones(len(angles), dtype=torch.bool), 512, 512, 30.0)
        got = head_angles(estimate_pose(tracks).rotation)
        change.append(got - got[4])  # against the frontal render
    change = torch.cat(change).numpy()
    slopes = [np.polyfit(angles[:, axis].repeat(2), change[:, axis], 1)[0] for axis in (0, 1)]
    assert all(0.9 < s < 1.1 for s in slopes), slopes
