"""The default renderer on the real s42 portrait: identity, rigid shift, still background, mouth fill."""
import pytest
import torch

from reenact.canonical import load_canonical
from reenact.crop import CropConfig, apply_affine, ffhq_crop, warp_affine
from reenact.pose import estimate_pose
from reenact.structures import HeadPose, Tracks
from reenact.track import track_image
from reenact.warp import WarpRenderer
from third_party_wrappers.image import read_image


@pytest.fixture(scope="module")
def setup(media):
    rgb = read_image(media / "s42.jpg")
    tracks = track_image(rgb)
    crop = ffhq_crop(tracks.landmarks[0], CropConfig(size=256, scale=1.6))
    img = torch.tensor(rgb).permute(2, 0, 1)[None].float() / 255
    source = warp_affine(img, crop.image_from_crop[None], (256, 256))[0]
    verts = apply_affine(crop.crop_from_image, tracks.landmarks[0])
    person = torch.zeros(1, 256, 256)
    person[:, 20:, 40:216] = 1  # a generous person region around the head
    renderer = WarpRenderer(source, verts, person, torch.ones(1, 256, 256))
    pose = estimate_pose(Tracks(verts[None], torch.ones(1, dtype=torch.bool), 256, 256, 0.0))
    return source, verts, renderer, pose


def shifted(pose: HeadPose, dx: float) -> HeadPose:
    return HeadPose(pose.rotation, pose.translation + torch.tensor([dx, 0.0, 0.0]), pose.scale)


def test_identity_warp_reproduces_source(setup):
    source, verts, renderer, pose = setup
    out = renderer.render(0, verts[None], pose)
    assert out.image.shape == (1, 3, 256, 256) and out.face.shape == (1, 1, 256, 256)
    assert (out.image[0] - source).abs().mean() < 0.01
    assert out.face.mean() > 0.05 and out.mouth.sum() == 0


def test_shift_moves_face_and_keeps_background(setup):
    source, verts, renderer, pose = setup
    out = renderer.render(0, (verts + torch.tensor([8.0, 0.0, 0.0]))[None], shifted(pose, 8.0)).image[0]
    face = renderer_face_box(verts)
    y0, y1, x0, x1 = face
    moved = (out[:, y0:y1, x0 + 8:x1 + 8] - source[:, y0:y1, x0:x1]).abs().mean()
    unmoved = (out[:, y0:y1, x0:x1] - source[:, y0:y1, x0:x1]).abs().mean()
    assert moved < 0.02 < unmoved
    assert (out[:, :, :12] - source[:, :, :12]).abs().max() < 0.01  # background column far left is still


def renderer_face_box(verts):
    x0, y0 = verts[:468, :2].min(0).values.int().tolist()
    x1, y1 = verts[:468, :2].max(0).values.int().tolist()
    cx, cy, hw, hh = (x0 + x1) // 2, (y0 + y1) // 2, (x1 - x0) // 4, (y1 - y0) // 4
    return cy - hh, cy + hh, cx - hw, cx + hw


def test_open_mouth_is_filled_from_driver(setup):
    source, verts, renderer, pose = setup
    face = load_canonical()
    target = verts.clone()
    lower = face.shape[:, 1] < face.shape[14, 1] + 0.01  # lower lip and chin
    target[lower, 1] += 14.0
    driving = torch.zeros(1, 3, 256, 256)
    driving[:, 2] = 1.0  # a blue driver: the fill must come from it
    out = renderer.render(0, target[None], pose, driving, target[None])
    mouth = out.mouth[0, 0] > 0.5
    assert mouth.sum() > 30
    assert out.image[0, 2][mouth].mean() > out.image[0, 0][mouth].mean() + 0.2
    assert out.valid[0, 0][mouth].max() < 0.5
