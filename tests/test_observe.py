import itertools
import math
import sys

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("dlib")

from reenact.errors import MissingAssetError  # noqa: E402
from reenact.evaluate import observer_section, track_file  # noqa: E402
from reenact.expression import MeshOffsetModel, extract_motion  # noqa: E402
from reenact.geometry import angles_to_matrix, head_angles  # noqa: E402
from reenact.observe import (ANGLES, EXPRESSIONS, RIGID, SAME_PERSON, Observation, compare_observations,  # noqa: E402
                             expression_measures, landmarks_3d, load_observer, observe_video, report_lines,
                             solve_pnp)
from third_party_wrappers.image import read_image  # noqa: E402
from third_party_wrappers.video import VideoWriter, open_video  # noqa: E402


@pytest.fixture(scope="module")
def faces():
    """dlib's models, loaded once for the module (~1.5 s)."""
    return load_observer()


@pytest.fixture(scope="module")
def d0_frames(media) -> np.ndarray:
    with open_video(media / "d0.mp4") as reader:
        return reader.read(list(range(30)))


@pytest.fixture(scope="module")
def d0(d0_frames, faces) -> Observation:
    return observe_video(d0_frames, every=10, faces=faces)


@pytest.fixture(scope="module")
def s42(media) -> np.ndarray:
    return read_image(media / "s42.jpg")


@pytest.fixture(scope="module")
def talking(talking_clip, faces) -> Observation:
    return observe_video(talking_clip, every=8, faces=faces)


def test_landmarks_and_descriptors_on_real_media(d0, tmp_path):
    assert d0.found.all() and d0.detected.all() and len(d0) == 30 and (d0.height, d0.width) == (512, 512)
    assert ((d0.landmarks > 0) & (d0.landmarks < 512)).all()
    assert d0.angles.isfinite().all() and d0.expression.isfinite().all()
    assert d0.descriptors[::10].isfinite().all() and d0.descriptors[1:10].isnan().all()
    d0.save(tmp_path / "d0.npz")
    loaded = Observation.load(tmp_path / "d0.npz")
    for name in ("landmarks", "found", "detected", "angles", "expression", "descriptors"):
        torch.testing.assert_close(getattr(loaded, name), getattr(d0, name), equal_nan=True, rtol=0, atol=0)
    assert (loaded.height, loaded.width, loaded.every) == (512, 512, 10)


def test_pnp_recovers_a_known_pose():
    model = landmarks_3d()[list(RIGID)]
    truth = angles_to_matrix(torch.tensor([[25.0, -12, 8], [-40, 20, -15]]).double())
    trans = torch.tensor([[4.0, -3, 55], [-6, 2, 40]]).double()
    cam = model @ truth.transpose(1, 2) + trans[:, None]
    pixels = 600 * cam[..., :2] / cam[..., 2:] + torch.tensor([320.0, 240.0]).double()
    rot, t = solve_pnp(pixels, model, 600.0, (320.0, 240.0))
    assert torch.allclose(head_angles(rot), head_angles(truth), atol=1e-6) and torch.allclose(t, trans, atol=1e-6)


def test_expression_ignores_roll_scale_and_shift(d0):
    c, s = math.cos(0.5), math.sin(0.5)
    moved = 2.5 * d0.landmarks @ torch.tensor([[c, s], [-s, c]]) + torch.tensor([40.0, -7.0])
    torch.testing.assert_close(expression_measures(moved), d0.expression, atol=1e-5, rtol=1e-4)


def test_flipped_video_negates_yaw_and_roll(d0_frames, d0, faces):
    flipped = observe_video(np.ascontiguousarray(d0_frames[:, :, ::-1]), every=30, faces=faces)
    assert flipped.found.all()
    mirrored = (flipped.angles + d0.angles).abs()
    assert mirrored[:, 0].max() < 2 and mirrored[:, 2].max() < 2
    assert mirrored[:, 0].mean() < 1 and mirrored[:, 2].mean() < 1


def test_in_plane_rotation_is_roll(s42, faces):
    rotated = np.asarray(Image.fromarray(s42).rotate(15, resample=Image.BILINEAR))  # counter-clockwise
    observed = observe_video(np.stack([s42, rotated]), faces=faces)
    change = observed.angles[1] - observed.angles[0]
    assert change[2] == pytest.approx(15, abs=2) and change[:2].abs().max() < 2


def test_open_mouth_opens_far_more(media, s42, faces):
    mouth = EXPRESSIONS.index("mouth_open")
    closed = observe_video(s42[None], faces=faces).expression[0, mouth]
    wide = observe_video(read_image(media / "face_open_mouth.jpg")[None], faces=faces).expression[0, mouth]
    assert wide > 3 * closed and wide - closed > 0.15


def test_identity_distances(media, s42, faces):
    same = observe_video(s42[None], faces=faces)
    other = observe_video(read_image(media / "obama.jpg")[None], faces=faces)
    stranger = compare_observations(same, other, same)
    assert stranger.identity_to_source == pytest.approx(0, abs=1e-5) and stranger.same_person_rate == 1
    assert stranger.identity_to_driver > SAME_PERSON and stranger.driver_to_source > SAME_PERSON


def test_driver_against_itself_and_a_still_output(talking, talking_clip, faces, tmp_path):
    itself = compare_observations(talking, talking, talking)
    assert itself.pose_error == [0, 0, 0, 0] and itself.pose_std_ratio == [1, 1, 1]
    assert all(r == pytest.approx(1) for r in itself.pose_correlation + list(itself.expression_correlation.values()))
    assert min(itself.driver_motion[:3]) > 1  # the clip turns and nods

    with open_video(talking_clip) as reader:
        first, info = reader.read([0]), reader.info
    still_path = tmp_path / "still.mp4"
    with VideoWriter(still_path, info.fps, info.width, info.height) as writer:
        writer.write(np.repeat(first, info.n_frames, 0))
    still = compare_observations(observe_video(still_path, every=8, faces=faces), talking, talking, ref=0)
    for corr, ratio in zip(still.pose_correlation + list(still.expression_correlation.values()),
                           still.pose_std_ratio + list(still.expression_std_ratio.values())):
        assert corr is None or ratio < 0.15
    assert all(r == pytest.approx(1, abs=0.2) for r in still.pose_error_ratio)  # it misses all the motion
    assert still.identity_to_source < 0.2 and still.same_person_rate == 1  # ... but keeps the person


def test_observer_yaw_agrees_with_the_pipeline(talking, talking_clip):
    # A sanity check of sign and trend, not a calibration: the two trackers differ in scale (see README).
    pipeline = extract_motion(track_file(talking_clip), MeshOffsetModel()).pose.angles()[:, 0]
    observed = talking.angles[:, ANGLES.index("yaw")]
    assert np.corrcoef(pipeline.numpy(), observed.numpy())[0, 1] > 0.8


def test_missing_dlib_is_reported_with_the_install_hint(monkeypatch, s42, talking_clip):
    monkeypatch.setitem(sys.modules, "dlib", None)
    with pytest.raises(MissingAssetError, match=r'pip install "reenact\[eval\]"'):
        observe_video(s42[None])
    section = observer_section(s42, talking_clip, talking_clip, 0)
    assert section["available"] is False
    assert report_lines(section) == [f"observer (dlib): unavailable: {section['reason']}"]
    assert 'pip install "reenact[eval]"' in section["reason"]


def test_missed_detections_carry_the_box_over(d0_frames, d0, faces, monkeypatch):
    detect = faces.detect

    def detect_only(keep):
        calls = itertools.count()
        return lambda rgb: detect(rgb) if keep(next(calls)) else None

    monkeypatch.setattr(faces, "detect", detect_only(lambda i: i % 3 == 0))
    carried = observe_video(d0_frames, every=10, faces=faces)
    assert carried.found.all() and carried.detected.tolist() == [i % 3 == 0 for i in range(30)]
    assert (carried.landmarks - d0.landmarks).norm(dim=-1).mean() < 1  # px, in a 512 px frame
    monkeypatch.setattr(faces, "detect", detect_only(lambda i: i == 0))
    lost = observe_video(d0_frames[:8], max_carry=3, faces=faces)
    assert lost.found.tolist() == [True] * 4 + [False] * 4 and lost.angles[4:].isnan().all()
