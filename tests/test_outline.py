"""The head's outline as a second observation of the pose: it holds a still head whose landmarks turn (as a talking
face's do) and follows a head that really moves."""
import numpy as np
import pytest
import torch

from reenact.geometry import FRONTAL, angles_to_matrix
from reenact.outline import CROP, head_crop
from reenact.pose import estimate_pose
from reenact.structures import Tracks
from reenact.track import track_image
from third_party_wrappers.image import read_image

FRAMES = 24
HAIR_TOP = torch.tensor([0.0, 2.2, -1.0])  # head frame: above the forehead, on the outline's plane


def _moves(rgb: np.ndarray, face: np.ndarray, angles: torch.Tensor, shifts: torch.Tensor, image_moves: bool):
    """Tracks of a still portrait whose landmarks per frame are turned by `angles` (deg, yaw/pitch/roll) about the
    face's centre and shifted by `shifts` px: the tracker's error when the image stays, real motion when it is
    rotated and shifted by the same in-plane amount (only the roll and the shift can move a photo)."""
    centre = torch.from_numpy(face).mean(0)
    rot = angles_to_matrix(angles) @ FRONTAL  # the head's turn, in the image frame
    points = (torch.from_numpy(face)[None] - centre) @ rot.transpose(1, 2) + centre
    points[..., :2] += shifts[:, None]
    heads, boxes = [], []
    for t in range(FRAMES):
        frame = rgb
        if image_moves:  # output pixel p reads input m^-1 (p - centre - shift) + centre
            m = rot[t, :2, :2]
            h, w = rgb.shape[:2]
            yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
            rel = torch.stack([torch.from_numpy(xx), torch.from_numpy(yy)], -1) - centre[:2] - shifts[t]
            src = rel @ m + centre[:2]
            xs = src[..., 0].round().long().clamp(0, w - 1).numpy()
            ys = src[..., 1].round().long().clamp(0, h - 1).numpy()
            frame = rgb[ys, xs]
        crop, box = head_crop(frame, points[t].numpy())
        heads.append(crop)
        boxes.append(box)
    return Tracks(points.float(), torch.ones(FRAMES, dtype=torch.bool), rgb.shape[0], rgb.shape[1], 30.0,
                  heads=torch.from_numpy(np.stack(heads)), head_boxes=torch.from_numpy(np.stack(boxes)))


def _hair_top(tracks: Tracks) -> torch.Tensor:
    pose = estimate_pose(tracks)
    return pose.scale[:, None] * (pose.rotation @ HAIR_TOP) + pose.translation


@pytest.fixture(scope="module")
def portrait(media):
    rgb = read_image(media / "s42.jpg")
    return rgb, track_image(rgb).landmarks[0].numpy()


def test_head_crop_frames_the_head(portrait):
    rgb, face = portrait
    crop, (x0, y0, side) = head_crop(rgb, face)
    assert crop.shape == (CROP, CROP) and crop.dtype == np.uint8
    eyes = face[[33, 263], :2].mean(0)
    assert x0 < face[:, 0].min() and x0 + side > face[:, 0].max()  # the face and room beside it
    assert y0 < face[:, 1].min() - 0.3 * (face[:, 1].max() - face[:, 1].min())  # room above the forehead (hair)
    assert abs((eyes[0] - x0) / side - 0.5) < 0.1
    cell = side / CROP  # a block of the crop is the mean of the image there
    r, c = 40, 40
    block = rgb[int(y0 + r * cell):int(y0 + (r + 1) * cell), int(x0 + c * cell):int(x0 + (c + 1) * cell)]
    assert abs(float(block.mean()) - float(crop[r, c])) < 6


def test_the_outline_holds_a_still_head_and_follows_a_moving_one(portrait):
    rgb, face = portrait
    g = torch.Generator().manual_seed(0)
    angles = torch.randn(FRAMES, 3, generator=g) * torch.tensor([2.0, 2.0, 2.0])
    shifts = torch.randn(FRAMES, 2, generator=g) * 3.0
    noisy = _moves(rgb, face, angles, shifts, image_moves=False)
    landmarks_only = _hair_top(Tracks(noisy.landmarks, noisy.found, noisy.height, noisy.width, 30.0))
    held = _hair_top(noisy)
    spread_before = landmarks_only[:, :2].std(0).norm()
    spread_after = held[:, :2].std(0).norm()
    assert spread_before > 4  # px: the landmarks' error moves the hair top
    assert spread_after < 0.35 * spread_before, (spread_before, spread_after)

    # frames whose crop shows something else (a background that changed, a hand) fall back to the landmarks
    hidden = [5, 11, 17]
    other = noisy.heads.clone()
    other[hidden] = torch.from_numpy(rgb[::6, ::6].mean(-1).astype(np.uint8)[:CROP, :CROP]).flip(0)
    spoilt = _hair_top(Tracks(noisy.landmarks, noisy.found, noisy.height, noisy.width, 30.0, heads=other,
                              head_boxes=noisy.head_boxes))
    kept = [t for t in range(FRAMES) if t not in hidden]
    assert (spoilt - landmarks_only)[hidden, :2].norm(dim=-1).max() < 0.25 * (landmarks_only - held)[
        hidden, :2].norm(dim=-1).max()
    assert spoilt[kept, :2].std(0).norm() < 0.35 * spread_before

    real = torch.cat([torch.zeros(FRAMES, 2), angles[:, 2:]], 1)  # a photo can only roll and shift
    moving = _moves(rgb, face, real, shifts, image_moves=True)
    follows = _hair_top(moving)
    truth = _hair_top(Tracks(moving.landmarks, moving.found, moving.height, moving.width, 30.0))
    assert (follows - truth)[:, :2].norm(dim=-1).max() < 1.5, (follows - truth)[:, :2].norm(dim=-1)
    assert follows[:, :2].std(0).norm() > 0.8 * truth[:, :2].std(0).norm()
