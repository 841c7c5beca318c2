"""The repair stage and the turn limit on synthetic motions with known answers."""
from __future__ import annotations

import math

import torch

from reenact.canonical import load_canonical
from reenact.geometry import angles_to_matrix, head_angles
from reenact.repair import expression_regions, fill, repair_motion
from reenact.screen import REGIONS, ScreenConfig, Screening
from reenact.structures import Expression, HeadPose, Motion
from reenact.transfer import limit_turn, soft_limit

FPS = 25.0


def motion_of(yaw: torch.Tensor, codes: torch.Tensor, ref: int = 0) -> Motion:
    n = len(yaw)
    angles = torch.stack([yaw, torch.zeros(n), torch.zeros(n)], 1)
    pose = HeadPose(angles_to_matrix(angles), torch.zeros(n, 3), torch.full((n,), 100.0))
    return Motion(pose, Expression(codes, "mesh-offset", []), load_canonical().shape, torch.ones(n, dtype=torch.bool),
                  FPS, ref)


def screening(n: int, reason=None, shot=None, occluded=None) -> Screening:
    return Screening(torch.zeros(n, dtype=torch.int64) if reason is None else reason,
                     torch.zeros(n, dtype=torch.int64) if shot is None else shot,
                     torch.zeros(n, len(REGIONS), dtype=torch.bool) if occluded is None else occluded, FPS)


def meshes_of(n: int) -> torch.Tensor:
    return load_canonical().shape.expand(n, -1, -1).clone()


def test_fill_bridges_short_gaps_and_eases_long_ones_to_rest():
    x = torch.linspace(1, 2, 60, dtype=torch.float64)[:, None]
    valid = torch.ones(60, dtype=torch.bool)
    valid[10:14] = False  # short: interpolated between 9 and 14
    valid[25:55] = False  # long: eased to 0 and back
    out = fill(x, valid, hold=12, ease=8, shot=torch.zeros(60, dtype=torch.int64))
    assert torch.allclose(out[10:14], x[10:14], atol=1e-9)  # x is linear: interpolation is exact
    assert out[33:47].abs().max() == 0  # rested
    steps = out.diff(dim=0).abs()
    assert steps.max() < 1.5 * float(x[55]) / 8 + 1e-9  # smoothsteps over 8 frames (to 0 and to x[55]): no jump
    assert torch.equal(out[valid], x[valid])


def test_a_cut_eases_from_the_last_shot_and_the_new_shot_moves_from_its_own_reference():
    n, cut = 80, 40
    yaw = torch.cat([torch.linspace(0, 5, cut), 25 + torch.linspace(0, 5, n - cut)])  # the new camera adds 25 deg
    motion = motion_of(yaw, torch.zeros(n, 6))
    shot = (torch.arange(n) >= cut).long()
    fixed = repair_motion(motion, screening(n, shot=shot), meshes_of(n), ScreenConfig())
    out = head_angles(fixed.pose.rotation)[:, 0]
    assert (out.diff().abs().max()) < 1.0  # the jump is eased: the driver itself moves 0.13 deg a frame
    ease = round(ScreenConfig().ease_s * FPS)
    # after the ease, the second shot moves by its change since its reference (its most frontal frame, 40)
    assert torch.allclose(out[cut + ease:] - out[cut + ease], yaw[cut + ease:] - yaw[cut + ease], atol=0.05)
    assert out[cut + ease:].abs().max() < 6  # not 25 + : the camera change is not a head turn
    held = repair_motion(motion, screening(n, shot=shot), meshes_of(n), ScreenConfig(cuts="hold"))
    out = head_angles(held.pose.rotation)[:, 0]
    assert torch.allclose(out[cut:] - out[cut - 1], yaw[cut:] - yaw[cut], atol=0.2)  # continues from the last pose


def test_unusable_frames_and_an_occluded_mouth_are_held_while_the_rest_moves():
    n = 50
    yaw = torch.linspace(0, 10, n)
    regions = expression_regions(Expression(torch.zeros(1, 478 * 3), "mesh-offset", []))
    mouth, eye = regions[0], regions[1]
    codes = torch.zeros(n, 478 * 3)
    wave = torch.sin(torch.arange(n) / 3.0)[:, None]
    codes[:, mouth] = wave
    codes[:, eye] = wave
    reason = torch.zeros(n, dtype=torch.int64)
    reason[20:24] = 1  # no face for 4 frames
    occluded = torch.zeros(n, 3, dtype=torch.bool)
    occluded[30:36, 0] = True  # the mouth is covered for 6 frames
    fixed = repair_motion(motion_of(yaw, codes), screening(n, reason, occluded=occluded), meshes_of(n), ScreenConfig())
    out = fixed.expression.coeffs
    line = torch.linspace(0, 1, 6)[1:-1, None]
    assert torch.allclose(out[20:24, eye], (wave[19] * (1 - line) + wave[24] * line).expand(-1, int(eye.sum())),
                          atol=1e-5)  # bridged
    assert torch.allclose(out[30:36, eye], codes[30:36, eye])  # the eyes keep moving under a covered mouth ...
    assert not torch.allclose(out[30:36, mouth], codes[30:36, mouth], atol=0.05)  # ... the mouth does not follow
    assert (out[29:37, mouth].diff(dim=0).abs().max()) < 0.3
    assert torch.equal(fixed.found, reason == 0)
    assert math.isclose(float(head_angles(fixed.pose.rotation)[22, 0]), float(yaw[22]), abs_tol=0.05)


def test_turns_beyond_the_renderers_range_are_limited_softly():
    x = torch.linspace(-90, 90, 181)
    y = soft_limit(x, 40.0)
    assert torch.equal(y[x.abs() <= 30], x[x.abs() <= 30])
    assert y.abs().max() < 40 and (y.diff() > 0).all()
    source = angles_to_matrix(torch.tensor([[10.0, 0.0, 0.0]]))[0]
    turns = angles_to_matrix(torch.tensor([[15.0, 5.0, 3.0], [80.0, 0.0, 0.0], [10.0, -60.0, 0.0]]))
    out = limit_turn(turns, source, 40.0, 30.0)
    assert torch.equal(out[0], turns[0])
    angles = head_angles(out)
    assert 10 + 30 < angles[1, 0] < 10 + 40 and angles[2, 1] > -30
