"""Pose, expression, smoothing and transfer on synthetic ground truth and real tracks."""
import math

import torch

from reenact.canonical import EYELIDS, LIP_GAP, load_canonical
from reenact.expression import MeshOffsetModel, extract_motion
from reenact.geometry import angles_to_matrix, head_angles
from reenact.pose import estimate_pose, to_image, view_bias
from reenact.evaluate import jitter
from reenact.smooth import SmoothConfig, smooth_motion
from reenact.structures import Expression, HeadPose, Motion, Tracks
from reenact import transfer as transfer_stage
from reenact.transfer import MESH_OFFSET, TransferConfig, choose_reference, transfer


def synthetic_tracks(angles, mouth=None, scale=100.0, noise=0.0, seed=0):
    """Canonical face posed at yaw/pitch/roll [T, 3] degrees and `scale` (one, or [T]), optionally with the jaw
    opened, as the tracker reports it: with its view bias (`reenact.pose.view_bias`)."""
    face = load_canonical()
    t = len(angles)
    shape = face.shape.expand(t, -1, -1).clone()
    if mouth is not None:  # open the mouth: drop the lower-lip/chin region
        lower = face.shape[:, 1] < face.shape[LIP_GAP[1], 1] + 0.01
        shape[:, lower, 1] -= mouth[:, None]
    rot = angles_to_matrix(angles)
    pose = HeadPose(rot, torch.tensor([256.0, 240.0, 0.0]).expand(t, 3), torch.as_tensor(scale, dtype=torch.float32).expand(t).clone())
    lm = to_image(shape + view_bias(rot), pose)
    lm = lm + noise * torch.randn(lm.shape, generator=torch.Generator().manual_seed(seed))
    return Tracks(lm.float(), torch.ones(t, dtype=torch.bool), 512, 512, 30.0), pose


def test_pose_recovers_known_angles():
    angles = torch.tensor([[0.0, 0, 0], [25, -10, 5], [-35, 15, -8], [10, 20, 12]])
    tracks, truth = synthetic_tracks(angles, mouth=torch.tensor([0.0, 0.2, 0.1, 0.3]))
    pose = estimate_pose(tracks)
    assert (head_angles(pose.rotation) - angles).abs().max() < 0.1
    torch.testing.assert_close(pose.scale, truth.scale, rtol=1e-4, atol=0)


def test_expression_is_pose_free_and_reconstructs_landmarks():
    angles = torch.tensor([[0.0, 0, 0], [30, 10, 0], [-20, -10, 10]])
    mouth = torch.tensor([0.0, 0.25, 0.25])
    tracks, _ = synthetic_tracks(angles, mouth)
    motion = extract_motion(tracks, MeshOffsetModel(), ref=0)
    codes = motion.expression.coeffs
    assert codes[0].abs().max() == 0  # the reference frame
    torch.testing.assert_close(codes[1], codes[2], atol=1e-3, rtol=0)  # same expression, other pose
    recon = to_image(MeshOffsetModel().mesh(motion.shape, motion.expression) + view_bias(motion.pose.rotation),
                     motion.pose)  # the mesh is the face's own; the tracker adds its bias at each pose
    torch.testing.assert_close(recon, tracks.landmarks, atol=1e-2, rtol=0)


def test_reference_is_most_frontal_and_neutral():
    angles = torch.tensor([[30.0, 5, 0], [2, 1, 0], [1, 0, 0], [-20, 0, 0]])
    mouth = torch.tensor([0.0, 0.0, 0.4, 0.0])  # frame 2 is frontal but has its mouth open
    tracks, _ = synthetic_tracks(angles, mouth)
    assert extract_motion(tracks, MeshOffsetModel()).ref == 1


def test_relative_transfer():
    drv_tracks, _ = synthetic_tracks(torch.tensor([[5.0, 0, 0], [25, 0, 0], [5, 10, 0]]),
                                     mouth=torch.tensor([0.0, 0.3, 0.0]))
    src_tracks, _ = synthetic_tracks(torch.tensor([[-10.0, 0, 0]]), scale=60)
    model = MeshOffsetModel()
    src = extract_motion(src_tracks, model, ref=0)
    drv = extract_motion(drv_tracks, model, ref=0)
    out = transfer(src, drv)
    ang = head_angles(out.pose.rotation)
    torch.testing.assert_close(ang[:, 0], torch.tensor([-10.0, 10.0, -10.0]), atol=0.5, rtol=0)  # composed, not added
    torch.testing.assert_close(out.pose.scale[0], torch.tensor(60.0), rtol=1e-3, atol=0)
    assert out.expression.coeffs[0].abs().max() < 1e-4 and out.expression.coeffs[1].abs().max() > 0.1
    pose_only = transfer(src, drv, TransferConfig(expression=False))
    assert pose_only.expression.coeffs.abs().max() < 1e-4
    expr_only = transfer(src, drv, TransferConfig(pose=False))
    torch.testing.assert_close(expr_only.pose.rotation, src.pose.rotation.expand(3, -1, -1))
    absolute = transfer(src, drv, TransferConfig(mode="absolute", max_yaw=90))
    torch.testing.assert_close(head_angles(absolute.pose.rotation)[:, 0], torch.tensor([5.0, 25.0, 5.0]),
                               atol=0.2, rtol=0)
    limited = head_angles(transfer(src, drv, TransferConfig(mode="absolute")).pose.rotation)[:, 0]
    assert 33 < float(limited[1]) + 10 < 35  # 35 deg from the source's -10: past the knee (30), bent a little
    doubled = transfer(src, drv, TransferConfig(expression_scale=2.0))
    torch.testing.assert_close(doubled.expression.coeffs, 2 * out.expression.coeffs, atol=1e-5, rtol=0)


def test_a_driver_zooming_far_in_or_out_is_limited_softly():
    """A driver whose face halves or doubles in size (a camera zoom within a shot, a squeezed frame) moves the
    output head's size at most `max_zoom`; a small change passes exactly."""
    scales = torch.tensor([40.0, 42, 20, 80])
    drv_tracks, _ = synthetic_tracks(torch.zeros(4, 3), scale=scales)
    src_tracks, _ = synthetic_tracks(torch.zeros(1, 3), scale=60)
    model = MeshOffsetModel()
    out = transfer(extract_motion(src_tracks, model, ref=0), extract_motion(drv_tracks, model, ref=0))
    zoom = out.pose.scale / 60
    torch.testing.assert_close(zoom[:2], torch.tensor([1.0, 1.05]), rtol=2e-3, atol=0)
    assert 1 / 1.3 < float(zoom[2]) < 0.8 and 1.25 < float(zoom[3]) < 1.3


def test_smoothing_reduces_jitter_keeps_motion():
    t = torch.arange(120, dtype=torch.float32)
    yaw = 20 * torch.sin(2 * math.pi * t / 60)
    angles = torch.stack([yaw, torch.zeros_like(t), torch.zeros_like(t)], 1)
    tracks, _ = synthetic_tracks(angles, mouth=(t > 60).float() * 0.3, noise=1.0)
    motion = extract_motion(tracks, MeshOffsetModel(), ref=0)
    for method, min_ratio in (("one_euro", 1.5), ("savgol", 1.5), ("gaussian", 2.0)):
        smooth = smooth_motion(motion, SmoothConfig(method=method))
        rec = to_image(MeshOffsetModel().mesh(smooth.shape, smooth.expression), smooth.pose)
        assert jitter(tracks.landmarks) / jitter(rec) > min_ratio, method
        err = (head_angles(smooth.pose.rotation)[:, 0] - yaw).abs()
        assert err[10:].mean() < 2.0, method  # the head still turns (little lag)


def test_smoothing_on_so3_near_half_turn():
    # yaw passes +-180 degrees, where Euler angles wrap: the filtered rotation must stay continuous
    yaw = torch.linspace(170, 190, 40)
    angles = torch.stack([yaw, torch.zeros(40), torch.zeros(40)], 1)
    pose = HeadPose(angles_to_matrix(angles), torch.zeros(40, 3), torch.ones(40))
    from reenact.smooth import smooth_pose

    out = smooth_pose(pose, 30.0, SmoothConfig(method="gaussian"))
    ang = torch.rad2deg(torch.acos(((out.rotation.transpose(1, 2) @ pose.rotation).diagonal(dim1=1, dim2=2).sum(-1)
                                    .clamp(-1, 3) - 1) / 2))
    assert ang[3:-3].max() < 0.5


def test_head_pose_camera_labels_follow_the_eg3d_convention():
    from reenact.eg3d.camera import frontal_label

    rot = angles_to_matrix(torch.tensor([[0.0, 0, 0], [20, 0, 0], [0, 10, 0]]))
    labels = HeadPose(rot, torch.zeros(3, 3), torch.ones(3)).camera_labels()
    torch.testing.assert_close(labels[0], frontal_label()[0], atol=1e-5, rtol=0)
    origin = labels[:, [3, 7, 11]]
    torch.testing.assert_close(origin.norm(dim=-1), torch.full((3,), 2.7), atol=1e-4, rtol=0)
    assert origin[1, 0] < -0.5  # face turned to the image right = camera orbiting to the head's right (-x)
    assert origin[2, 1] > 0.2  # face tipped down = camera above the head (+y up)


def test_reference_is_not_a_blink():
    """The automatic reference passes over a frontal frame whose eyes are closed for a slightly turned open-eyed
    one: a blink as the reference would read every open eye as opening wide and every blink as barely closing."""
    face = load_canonical()
    angles = torch.tensor([[4.0, 0, 0], [4.0, 0, 0], [0.0, 0, 0], [4.0, 0, 0], [4.0, 0, 0]])
    rot = angles_to_matrix(angles)
    pose = HeadPose(rot, torch.zeros(5, 3), torch.ones(5))
    meshes = face.shape.expand(5, -1, -1).clone()
    for upper, lower in EYELIDS:
        meshes[2, upper] = meshes[2, lower]  # frame 2 blinks
    assert choose_reference(meshes, pose, torch.ones(5, dtype=torch.bool)) != 2
    meshes[2] = face.shape
    assert choose_reference(meshes, pose, torch.ones(5, dtype=torch.bool)) == 2  # open-eyed, it is the best


def test_eyes_rest_at_the_portraits_own_when_the_reference_squints(monkeypatch):
    """A driver who squints at the reference frame (lids a third closed, as in a broad smile) and opens the eyes in
    the other four: the portrait's eyes rest at their own gap in those frames (the eyes change from the driver's
    median, `eyes_at_rest`), not opened wide by the squint's difference for the whole video (the reference's eyes:
    the negative control). A reference the user names (`--ref-frame`) holds for the eyes too."""
    face = load_canonical()
    upper = [u for u, _ in EYELIDS]
    lower = [v for _, v in EYELIDS]
    squint = face.shape.clone()
    squint[upper] = torch.lerp(squint[upper], squint[lower], 0.35)
    offsets = torch.stack([torch.zeros_like(squint)] + [face.shape - squint] * 4).reshape(5, -1)
    pose = HeadPose(torch.eye(3).expand(5, 3, 3), torch.zeros(5, 3), torch.ones(5))
    driving = Motion(pose, Expression(offsets, MESH_OFFSET, []), squint, torch.ones(5, dtype=torch.bool), 30.0, 0)
    source = Motion(HeadPose(torch.eye(3)[None], torch.zeros(1, 3), torch.ones(1)),
                    Expression(torch.zeros(1, 478 * 3), MESH_OFFSET, []), face.shape, torch.ones(1, dtype=torch.bool),
                    30.0, 0)

    def gaps(motion):
        mesh = MeshOffsetModel().mesh(motion.shape, motion.expression)
        return mesh[1:, upper, 1] - mesh[1:, lower, 1]

    own = face.shape[upper, 1] - face.shape[lower, 1]
    torch.testing.assert_close(gaps(transfer(source, driving)), own.expand(4, -1), atol=0.02 * float(own.min()), rtol=0)
    assert (gaps(transfer(source, driving, TransferConfig(ref_frame=0))) > 1.2 * own).all()  # a named reference holds
    monkeypatch.setattr(transfer_stage, "eye_codes", lambda expression: torch.zeros(expression.coeffs.shape[1]))
    assert (gaps(transfer(source, driving)) > 1.2 * own).all()


def test_drivers_blink_closes_larger_and_smaller_source_eyes():
    """Mesh-offset transfer scales lid motion by the ratio of lid gaps: a driver's full blink closes a source
    whose eyes open wider than the driver's, and does not push the lids of narrower eyes past each other."""
    face = load_canonical()
    upper = [u for u, _ in EYELIDS]
    lower = [v for _, v in EYELIDS]
    drv_shape = face.shape.clone()
    blink = drv_shape.clone()
    blink[upper] = blink[lower]
    offsets = torch.stack([torch.zeros_like(drv_shape)] * 4 + [blink - drv_shape]).reshape(5, -1)  # blinks once
    pose = HeadPose(torch.eye(3).expand(5, 3, 3), torch.zeros(5, 3), torch.ones(5))
    driving = Motion(pose, Expression(offsets, MESH_OFFSET, []), drv_shape, torch.ones(5, dtype=torch.bool), 30.0, 0)
    for widen in (1.5, 0.7):
        src_shape = face.shape.clone()
        centre = (src_shape[upper] + src_shape[lower]) / 2
        src_shape[upper] = centre + widen * (src_shape[upper] - centre)
        src_shape[lower] = centre + widen * (src_shape[lower] - centre)
        source = Motion(HeadPose(torch.eye(3)[None], torch.zeros(1, 3), torch.ones(1)),
                        Expression(torch.zeros(1, 478 * 3), MESH_OFFSET, []), src_shape, torch.ones(1, dtype=torch.bool),
                        30.0, 0)
        target = transfer(source, driving)
        mesh = MeshOffsetModel().mesh(target.shape, target.expression)
        gap = (mesh[:, upper, 1] - mesh[:, lower, 1])  # canonical y up: upper lid above the lower
        src_gap = src_shape[upper, 1] - src_shape[lower, 1]
        torch.testing.assert_close(gap[:4], src_gap.expand(4, -1))
        assert gap[4].abs().max() < 0.05 * src_gap.min()
