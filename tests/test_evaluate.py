import json
import math
from importlib.util import find_spec

import numpy as np
import pytest
import torch

from reenact.canonical import LIP_GAP, load_canonical
from reenact.errors import InputError
from reenact.evaluate import SERIES, evaluate, jitter, main, pearson, reconstruction, shape_distance
from reenact.identity import ARCFACE_TEMPLATE, FIVE_POINTS, UNAVAILABLE, arcface_alignment, load_embedder
from reenact.observe import SAME_PERSON
from reenact.pipeline import RunConfig, reenact_video
from reenact.quality import psnr, ssim
from third_party_wrappers.video import VideoWriter, open_video

DLIB_NET = bool(find_spec("dlib") and find_spec("face_recognition_models"))


@pytest.fixture(scope="session")
def still_clip(talking_clip, tmp_path_factory):
    """The first frame of `talking_clip`, repeated for all its frames."""
    with open_video(talking_clip) as reader:
        first, info = reader.read([0]), reader.info
    path = tmp_path_factory.mktemp("clips") / "still.mp4"
    with VideoWriter(path, info.fps, info.width, info.height) as writer:
        writer.write(np.repeat(first, info.n_frames, 0))
    return path


@pytest.fixture(scope="session")
def reenacted(media, talking_clip, tmp_path_factory):
    """s42.jpg animated by `talking_clip` with the default pipeline."""
    out = tmp_path_factory.mktemp("out") / "s42--talking.mp4"
    reenact_video(media / "s42.jpg", talking_clip, out, RunConfig(progress=False))
    return out


def test_driving_against_itself_is_perfect(media, talking_clip):
    report = evaluate(media / "s42.jpg", talking_clip, talking_clip).report
    assert report.apd == [0, 0, 0] and report.apd_relative == [0, 0, 0] and report.aed == 0
    assert all(getattr(report.correlation, n) == pytest.approx(1) for n in SERIES)
    assert report.jitter_output == report.jitter_driving and report.detection_rate == 1
    assert report.shape_to_driving == 0 < report.shape_to_source
    assert report.observer["available"] == DLIB_NET
    if DLIB_NET:
        assert report.observer["pose_error"] == [0, 0, 0, 0] and report.observer["pose_std_ratio"] == [1, 1, 1]
        assert report.observer["identity_to_driver"] == 0 < SAME_PERSON < report.observer["identity_to_source"]


def test_still_output_has_no_correlation_and_misses_all_motion(media, talking_clip, still_clip):
    evaluation = evaluate(media / "s42.jpg", talking_clip, still_clip)
    report, drv = evaluation.report, evaluation.driving
    assert all(getattr(report.correlation, n) is None or abs(getattr(report.correlation, n)) < 0.3 for n in SERIES)
    # A head that never moves is off by the driver's whole motion (up to the still's tracking noise, which
    # offsets the first, detected frame from the tracked ones by up to ~0.7 deg).
    assert report.apd_relative == pytest.approx(drv.relative_angles.abs().mean(0).tolist(), abs=1.0)
    assert report.aed == pytest.approx(float(drv.expression.abs().mean()), rel=0.1)
    assert report.jitter_output < report.jitter_driving / 3
    assert "undefined" in report.lines()[3]


def test_cli_on_a_real_output(media, talking_clip, reenacted, tmp_path, capsys):
    report_path, plot_path = tmp_path / "r.json", tmp_path / "r.png"
    assert main(["--source", str(media / "s42.jpg"), "--driving", str(talking_clip), "--output", str(reenacted),
                 "--json", str(report_path), "--plot", str(plot_path)]) == 0
    out = capsys.readouterr().out
    assert (UNAVAILABLE in out) != DLIB_NET
    report = json.loads(report_path.read_text())
    assert report["detection_rate"] == 1 and (report["identity_output"] is None) != DLIB_NET
    assert 0 < report["shape_to_source"] and 0 < report["shape_to_driving"]
    # within 3.5 deg of the driver on every axis (pitch reads 3.0 on this nodding clip: both poses are held to the
    # head's outline, which stays while the face nods; a still output misses by the driver's mean turn, 4-6 deg)
    assert max(report["apd_relative"]) < 3.5 and report["correlation"]["yaw"] > 0.8
    assert report["reconstruction"] is None
    assert plot_path.stat().st_size > 10_000
    observer = report["observer"]
    assert observer["available"] == DLIB_NET and ("observer (dlib): unavailable" in out) != DLIB_NET
    if DLIB_NET:  # the output keeps the portrait's person and follows the driver's head
        assert observer["output_found"] == 1
        assert observer["identity_to_source"] < SAME_PERSON < observer["driver_to_source"]
        assert min(observer["pose_correlation"]) > 0.6 and observer["pose_error_ratio"][3] < 0.6


def test_cli_bad_input(media, talking_clip, tmp_path, capsys):
    assert main(["--source", str(media / "s42.jpg"), "--driving", str(talking_clip),
                 "--output", str(tmp_path / "missing.mp4")]) == 2
    assert capsys.readouterr().err.strip() == f"reenact: {tmp_path / 'missing.mp4'}: no such file"
    assert main(["--source", str(media / "s42.jpg"), "--driving", str(talking_clip), "--output", str(talking_clip),
                 "--arcface", str(tmp_path / "none.onnx")]) == 2
    assert "no such ArcFace ONNX file" in capsys.readouterr().err


def test_reconstruction_against_a_reference(media, talking_clip, expressive_clip, still_clip, tmp_path, capsys):
    report_path = tmp_path / "r.json"
    assert main(["--source", str(media / "s42.jpg"), "--driving", str(talking_clip), "--output", str(still_clip),
                 "--reference", str(talking_clip), "--json", str(report_path), "--no-observer"]) == 0
    out = capsys.readouterr().out
    assert "LPIPS: unavailable" in out and "observer (dlib)" not in out
    assert json.loads(report_path.read_text())["observer"] is None
    partial = json.loads(report_path.read_text())["reconstruction"]
    assert 10 < partial["psnr"] < 40 and 0 < partial["ssim"] < 1 and partial["lpips"] is None
    same = reconstruction(talking_clip, talking_clip)
    assert same.psnr == math.inf and same.ssim == pytest.approx(1)
    with pytest.raises(InputError, match="frame count"):
        reconstruction(expressive_clip, talking_clip)


def test_psnr_and_ssim_known_answers():
    torch.manual_seed(0)
    clean = torch.full((2, 3, 64, 64), 0.5)
    noisy = clean + 0.05 * torch.randn_like(clean)
    assert psnr(clean, clean).isinf().all() and ssim(clean, clean) == pytest.approx(1)
    assert psnr(clean, noisy) == pytest.approx(torch.tensor([26.02, 26.02]), abs=0.1)  # MSE 0.0025
    assert (ssim(clean, noisy) < 0.5).all() and (ssim(clean, noisy) < ssim(clean, (clean + noisy) / 2)).all()
    left = torch.zeros(2, 1, 64, 64)
    left[..., :32] = 1
    half = torch.cat([noisy[..., :32], clean[..., 32:]], -1)
    assert psnr(clean, half, mask=1 - left).isinf().all()
    assert psnr(clean, half, mask=left) == pytest.approx(psnr(clean[..., :32], noisy[..., :32]))
    with pytest.raises(InputError):
        psnr(clean, clean[..., :32])


def test_series_measures_known_answers():
    t = torch.linspace(0, 6, 50)
    assert pearson(torch.sin(t), 2 * torch.sin(t) + 1) == pytest.approx(1)
    assert pearson(torch.sin(t), -torch.sin(t)) == pytest.approx(-1)
    assert pearson(torch.sin(t), torch.ones(50)) is None
    assert pearson(torch.sin(t), 0.01 * torch.sin(t), still=0.1) is None
    shape, rigid = torch.randn(478, 3), load_canonical().rigid
    assert shape_distance(shape, shape + torch.tensor([1.0, 2, 3])) == pytest.approx(0, abs=1e-6)
    expression = shape.clone()
    expression[list(LIP_GAP)] += 0.3  # the mouth opens: not identity
    assert shape_distance(shape, expression) == 0
    delta = 0.1 * torch.randn(len(rigid))
    other = shape.clone()
    other[rigid, 0] += delta
    assert shape_distance(shape, other) == pytest.approx(float((delta - delta.mean()).pow(2).mean().sqrt()), rel=1e-4)
    steady = t[:, None, None] * torch.ones(50, 478, 2)
    assert jitter(steady) == pytest.approx(0, abs=1e-5) and jitter(steady[:2]) is None
    flicker = 0.01 * (-1) ** torch.arange(50.0)[:, None, None] * torch.tensor([1.0, 0.0]).expand(50, 478, 2)
    assert jitter(steady + flicker) == pytest.approx(0.04, rel=1e-4)


def test_arcface_alignment_recovers_a_similarity():
    angle, scale, shift = 0.3, 2.5, torch.tensor([100.0, 40.0])
    rot = torch.tensor([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    landmarks = torch.zeros(1, 478, 3)
    landmarks[0, list(FIVE_POINTS), :2] = scale * ARCFACE_TEMPLATE @ rot.T + shift
    expected = torch.cat([scale * rot, shift[:, None]], 1)
    assert torch.allclose(arcface_alignment(landmarks)[0], expected, atol=1e-4)


@pytest.mark.skipif(DLIB_NET, reason="dlib and face_recognition_models are installed")
def test_without_an_identity_network_none_is_loaded():
    assert load_embedder() is None
