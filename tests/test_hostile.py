"""Hostile driving footage: a short clip of real talking videos with cuts, an audience, a tiny face, an intruder,
a covered mouth, black frames and a head turned away, through the real tracker and the command line."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from reenact.data.hostile_clip import build
from reenact.pose import estimate_pose
from reenact.screen import REGIONS, ScreenConfig, screen_frames
from reenact.track import TrackConfig, track_video
from third_party_wrappers.image import read_image
from third_party_wrappers.video import VideoWriter, open_video

from tests.conftest import ROOT

SIDE, FPS = 320, 25.0
SECONDS = 0.32  # 8 frames a segment


@pytest.fixture(scope="module")
def hostile(media, tmp_path_factory):
    """(clip path, its segments) built from vs20 (the driver) and other people's clips."""
    path = tmp_path_factory.mktemp("hostile") / "hostile.mp4"
    segments = build(media / "vs20.mp4", [media / n for n in ("vs32.mp4", "d3.mp4", "d19.mp4", "vs29.mp4")], path,
                     SECONDS, SIDE, FPS)
    return path, {s.kind: s for s in segments[:-1]}, segments


@pytest.fixture(scope="module")
def tracks(hostile):
    path, _, segments = hostile
    return track_video(path, segments[-1].end, FPS, TrackConfig(), progress=False)


def test_the_tracker_follows_the_driver_and_nobody_else(hostile, tracks):
    _, seg, _ = hostile
    found = tracks.found
    for kind in ("driver", "intruder", "covered"):
        s = seg[kind]
        assert found[s.start + 2:s.end].all(), kind  # (a cut's first frames may wait for the tracker)
    for kind in ("audience", "tiny", "black"):
        s = seg[kind]
        assert not found[s.start:s.end].any(), kind  # others' faces, a face too small to track, nothing
    s = seg["intruder"]  # the driver is on the left, the larger newcomer on the right
    assert (tracks.landmarks[s.start:s.end][found[s.start:s.end], :, 0].mean(1) < SIDE / 2).all()


def test_a_driver_face_index_or_box_picks_that_face(media, tmp_path):
    """Two people from the first frame: by default the larger (the newcomer, right), by index 0 the leftmost (the
    driver), by a box around the left face that one, and each is followed to the end."""
    full = tmp_path / "intruder.mp4"
    build(media / "vs20.mp4", [media / "vs32.mp4"], full, 0.8, SIDE, FPS, kinds=("intruder",))
    with open_video(full) as reader:
        frames = reader.read(list(range(10, 20)))  # the newcomer is all in
    path, n = tmp_path / "two.mp4", len(frames)
    with VideoWriter(path, FPS, SIDE, SIDE) as writer:
        writer.write(frames)

    def centre_x(spec):
        t = track_video(path, n, FPS, TrackConfig(driver_face=spec, workers=1), progress=False)
        return t.landmarks[t.found][..., 0].mean(1)

    assert (centre_x("0") < SIDE / 2).all()
    assert (centre_x(f"{SIDE * 0.1},{SIDE * 0.2},{SIDE * 0.3},{SIDE * 0.3}") < SIDE / 2).all()
    assert (centre_x("") > SIDE / 2).all()


def test_screening_finds_the_cuts_the_gaps_and_the_covered_mouth(hostile, tracks):
    _, seg, segments = hostile
    screening = screen_frames(tracks, estimate_pose(tracks), ScreenConfig(), TrackConfig().cut_change)
    starts = torch.nonzero(torch.diff(screening.shot)).flatten() + 1
    for s in segments[1:]:
        assert (starts - s.start).abs().min() <= 2, f"no cut found at the {s.kind} segment ({s.start})"
    covered = seg["covered"]
    mouth = screening.occluded[covered.start + 2:covered.end, REGIONS.index("mouth")]
    assert mouth.float().mean() > 0.7
    driver = seg["driver"]
    assert not screening.occluded[driver.start:driver.end].any()
    assert (screening.reason[seg["black"].start:seg["black"].end] == 1).all()
    lines = screening.report(ScreenConfig())
    assert any("shot cut" in line for line in lines) and any("mouth occluded" in line for line in lines)


def test_a_clean_talking_clip_is_left_alone(talking_clip, media):
    """Squints, nods and turns of a clean clip are not occlusions or cuts: d3's grimace wrinkles the skin around the
    eyes (frames 5-20), and d3_short nods and turns."""
    with open_video(media / "d3.mp4") as reader:
        grimace = reader.read(list(range(0, 30)))
    clip = talking_clip.with_name("grimace.mp4")
    with VideoWriter(clip, FPS, grimace.shape[2], grimace.shape[1]) as writer:
        writer.write(grimace)
    for path, n in ((clip, len(grimace)), (talking_clip, 48)):
        t = track_video(path, n, FPS, TrackConfig(), progress=False)
        screening = screen_frames(t, estimate_pose(t), ScreenConfig(), TrackConfig().cut_change)
        assert screening.usable.all() and not screening.shot.any() and not screening.occluded.any(), path.name


@pytest.fixture(scope="module")
def animated(hostile, media, tmp_path_factory):
    path, _, _ = hostile
    out = tmp_path_factory.mktemp("hostile-out") / "s42.mp4"
    run = subprocess.run([sys.executable, "-m", "reenact.run", str(media / "s42.jpg"), str(path), "-o", str(out),
                          "--no-cache"], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-2000:]
    return out, run.stderr


def test_the_run_reports_what_it_held(animated):
    _, log = animated
    assert "shot cuts at frames" in log and "no driver's face:" in log and "mouth occluded:" in log


def test_no_output_frame_loses_the_portraits_face_or_jumps(animated, media):
    """dlib (no model shared with the pipeline) finds the portrait in every output frame, as the same person, and
    its face box never jumps between frames (a cut or a zoomed shot used to become a head jump or a giant face)."""
    pytest.importorskip("dlib")
    from reenact.observe import load_observer, observe_video

    out, _ = animated
    faces = load_observer()
    source = observe_video(read_image(media / "s42.jpg")[None], faces=faces)
    output = observe_video(out, faces=faces, max_carry=0)
    assert bool(output.detected.all())
    distance = (output.descriptors - source.descriptors[0]).norm(dim=-1)
    assert float(distance.max()) < 0.5
    lo, hi = output.landmarks.amin(1), output.landmarks.amax(1)
    size, centre = (hi - lo).amax(-1), (hi + lo) / 2
    assert float((size[1:] / size[:-1]).log().abs().max()) < np.log(1.08)
    assert float(((centre[1:] - centre[:-1]).norm(dim=-1) / size[:-1]).max()) < 0.05


def test_a_head_turned_beyond_the_limits_or_too_small_is_unusable():
    """Yaw beyond 50, pitch beyond 35 deg and faces under 40 px are screened out, each with its reason."""
    from tests.test_motion import synthetic_tracks

    angles = torch.tensor([[0.0, 0, 0], [60, 0, 0], [0, 40, 0], [10, 5, 0]])
    tracks, _ = synthetic_tracks(angles, scale=torch.tensor([100.0, 100, 100, 10]))
    screening = screen_frames(tracks, estimate_pose(tracks), ScreenConfig(), TrackConfig().cut_change)
    assert screening.reason.tolist() == [0, 3, 3, 2]
