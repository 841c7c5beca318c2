"""The default renderer on the real s42 portrait: identity, rigid shift, still background, mouth fill."""
import numpy as np
import kornia.filters as kf
import pytest
import torch
import torch.nn.functional as F

from reenact import warp
from reenact.canonical import EYELIDS, UPPER_LID_RINGS, load_canonical
from reenact.crop import CropConfig, apply_affine, ffhq_crop, warp_affine
from reenact.geometry import angles_to_matrix
from reenact.backdrop import FRINGE_GROW, Backdrop
from reenact.inputs import frames_to_tensor
from reenact.pose import estimate_pose
from reenact.raster import rasterize
from reenact.track import track_image
from reenact.structures import Crop, HeadPose, Tracks
from reenact.warp import STILL, LandmarkMeshMap, WarpRenderer, paste_frames, resample
from third_party_wrappers.image import read_image


@pytest.fixture(scope="module")
def setup(media):
    return renderer_setup(media / "s42.jpg")


def renderer_setup(path):
    """Source crop (256 px), its landmarks, a renderer and the source pose for a portrait."""
    rgb = read_image(path)
    tracks = track_image(rgb)
    crop = ffhq_crop(tracks.landmarks[0], CropConfig(size=256, scale=1.6))
    img = torch.tensor(rgb).permute(2, 0, 1)[None].float() / 255
    source = warp_affine(img, crop.image_from_crop[None], (256, 256))[0]
    verts = apply_affine(crop.crop_from_image, tracks.landmarks[0])
    person = torch.zeros(1, 256, 256)
    person[:, 20:, 40:216] = 1  # a generous person region around the head
    pose = estimate_pose(Tracks(verts[None], torch.ones(1, dtype=torch.bool), 256, 256, 0.0))
    renderer = WarpRenderer(Backdrop.of(source, person), LandmarkMeshMap(verts), pose, torch.ones(1, 256, 256))
    return source, verts, renderer, pose


def shifted(pose: HeadPose, dx: float) -> HeadPose:
    return HeadPose(pose.rotation, pose.translation + torch.tensor([dx, 0.0, 0.0]), pose.scale)


def test_a_far_moving_head_does_not_fold_its_surroundings(setup):
    """A head moving 0.3-1.2 eye-corner distances sideways: across the head motion's fade, every crop pixel
    outside the face still reads further right than its left neighbour (no fold: a fold mirrors hair or a shoulder
    into a streak dragged after the head, as the fixed-width fade did past 0.6)."""
    _, verts, renderer, pose = setup
    for travel in (0.3, 0.6, 1.2):
        dx = float(pose.scale[0]) * travel
        m = renderer.warp_map(0, (verts + torch.tensor([dx, 0.0, 0.0]))[None], shifted(pose, dx))
        step = (m.read[0, :, 1:, 0] - m.read[0, :, :-1, 0]) * m.read.shape[1] / 256  # d read x / d x
        outside = (m.covered[0, :, 1:] + m.covered[0, :, :-1]) == 0
        assert float(step[outside].min()) > 0.05, travel


def turned(verts: torch.Tensor, pose: HeadPose, yaw: float, pitch: float) -> tuple[torch.Tensor, HeadPose]:
    """Landmarks and pose of the head turned about its centre by yaw and pitch (degrees)."""
    rot = angles_to_matrix(torch.tensor([yaw, pitch, 0.0])) @ angles_to_matrix(torch.zeros(3)).T
    centre = pose.translation[0]
    return centre + (verts - centre) @ rot.T, HeadPose(rot @ pose.rotation, pose.translation, pose.scale)


@pytest.mark.parametrize("yaw, pitch", [(0, 25), (0, -25), (0, 15), (30, 0), (-30, 0)])
def test_the_face_edge_does_not_fold_on_a_nodding_or_turning_head(setup, yaw, pitch):
    """Across the face mesh's edge, the read map does not fold back (Jacobian determinant >= -0.4: at most a stall,
    where a grazing cheek meets the field). Beyond the edge, the field carries the mesh's own motion at its visible
    edge; matched instead to the outline's vertices (hidden behind a turned cheek, or in front of the outline's
    plane on a nodding forehead) it folded there: determinant -0.9 to -2.5, a second arc across the forehead."""
    _, verts, renderer, pose = setup
    target, target_pose = turned(verts, pose, yaw, pitch)
    m = renderer.warp_map(0, target[None], target_pose)
    read, cov = m.read[0], m.covered[:, :-1, :-1]
    dx, dy = (read[:, 1:] - read[:, :-1])[:-1], (read[1:] - read[:-1])[:, :-1]
    det = (dx[..., 0] * dy[..., 1] - dx[..., 1] * dy[..., 0]) * (read.shape[0] / 256) ** 2
    band = (F.max_pool2d(cov, 9, 1, 4) > 0) & (F.max_pool2d(1 - cov, 9, 1, 4) > 0)  # 4 map px either side
    assert float(det[band[0]].min()) > -0.4


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


def opened_by_blue_driver(setup):
    """The render of the source with its jaw dropped 14 px, driven by a blue driving frame."""
    source, verts, renderer, pose = setup
    face = load_canonical()
    target = verts.clone()
    lower = face.shape[:, 1] < face.shape[14, 1] + 0.01  # lower lip and chin
    target[lower, 1] += 14.0
    driving = torch.zeros(1, 3, 256, 256)
    driving[:, 2] = 1.0  # a blue driver: the fill must come from it
    return renderer.render(0, target[None], pose, driving, target[None])


def test_open_mouth_is_filled_from_driver(setup):
    out = opened_by_blue_driver(setup)
    mouth = out.mouth[0, 0] > 0.5
    assert mouth.sum() > 30
    assert out.image[0, 2][mouth].mean() > out.image[0, 0][mouth].mean() + 0.2
    assert out.valid[0, 0][mouth].max() < 0.5


def test_an_open_source_mouth_keeps_its_own_interior(media):
    """A screaming portrait opened a third further shows its own teeth and tongue stretched, not the driver's mouth
    pasted over the whole opening (which laid a wall of the driver's teeth across it); a mouth barely open in the
    source (d38), opened as far, is filled from the driver."""
    screaming = opened_by_blue_driver(renderer_setup(media / "face_open_mouth.jpg"))
    assert screaming.mouth.max() < 0.1
    assert screaming.image[0, 2].mean() < screaming.image[0, 0].mean()  # nothing blue came in
    ajar = opened_by_blue_driver(renderer_setup(media / "d38.jpg"))
    assert ajar.mouth.max() > 0.9


@pytest.fixture()
def disc_backdrop():
    """A textured picture with a person disc (radius 30) in the middle of 128 x 128, its plate a flat grey."""
    g = torch.Generator().manual_seed(0)
    image = torch.rand(3, 128, 128, generator=g)
    ys, xs = torch.meshgrid(torch.arange(128) + 0.5, torch.arange(128) + 0.5, indexing="ij")
    person = (((xs - 64) ** 2 + (ys - 64) ** 2).sqrt() < 30).float()[None]
    return Backdrop(image, person, person, torch.full_like(image, 0.5))


def test_resample_moves_the_person_over_a_still_background(disc_backdrop):
    """Every pixel reads 6 px to its right (the person moves 6 px left): the background that stays visible is the
    source's own pixels (not shifted), the person covers background on its left, and the strip it uncovers on its
    right shows the background plate at its own place, neither the person's colours nor a shifted copy of the
    background."""
    image, person = disc_backdrop.image, disc_backdrop.person[0]
    shift = torch.zeros(1, 2, 128, 128)
    shift[:, 0] = 6.0
    out = resample(disc_backdrop, shift)[0]
    read_person = torch.roll(person, -6, dims=1)  # person at the read position
    still = (person == 0) & (read_person == 0)
    assert torch.equal(out[:, still], image[:, still])
    covered = (person == 0) & (read_person == 1)
    assert torch.allclose(out[:, covered], torch.roll(image, -6, dims=2)[:, covered])
    uncovered = (person == 1) & (read_person == 0)
    assert uncovered.sum() > 100
    assert torch.allclose(out[:, uncovered], disc_backdrop.plate[:, uncovered])


def test_the_plate_continues_the_background_behind_the_person():
    """A person disc over a left-to-right gradient with fine grain: the plate keeps every background pixel, fills
    the disc close to the gradient it interrupts (not one flat mean colour), and gives the fill grain as strong as
    the background's, not a flat blot."""
    g = torch.Generator().manual_seed(0)
    ys, xs = torch.meshgrid(torch.arange(160) + 0.5, torch.arange(160) + 0.5, indexing="ij")
    image = (xs / 160).expand(3, -1, -1) + 0.03 * torch.randn(3, 160, 160, generator=g)
    person = (((xs - 80) ** 2 + (ys - 80) ** 2).sqrt() < 40).float()[None]
    backdrop = Backdrop.of(image, person)
    hole = backdrop.fringe[0] > 0
    known = ((xs - 80) ** 2 + (ys - 80) ** 2).sqrt() > 50
    assert torch.equal(backdrop.plate[:, known], image[:, known])
    smooth = kf.gaussian_blur2d(backdrop.plate[None], (15, 15), (4.0, 4.0))[0]
    assert (smooth[:, hole] - (xs / 160)[hole]).abs().mean() < 0.05  # the gradient goes on through the hole
    grain = (backdrop.plate - smooth)[:, hole].std()
    assert 0.5 < grain / (image - kf.gaussian_blur2d(image[None], (15, 15), (4.0, 4.0))[0])[:, known].std() < 1.5


def test_the_plate_takes_the_tone_next_to_the_person_not_a_wider_average():
    """A person disc in a dark halo (a painted shadow, a light's fall-off) on a pale wall: the fill continues the
    tone it borders (a wider average would leave a paler head-shaped blot where the head moves away), with the
    wall's grain."""
    g = torch.Generator().manual_seed(0)
    ys, xs = torch.meshgrid(torch.arange(200) + 0.5, torch.arange(200) + 0.5, indexing="ij")
    r = ((xs - 100) ** 2 + (ys - 100) ** 2).sqrt()
    tone = 0.3 + 0.4 * ((r - 40) / 60).clamp(0, 1)
    image = (tone + 0.03 * torch.randn(3, 200, 200, generator=g)).clamp(0, 1)
    backdrop = Backdrop.of(image, (r < 40).float()[None])
    hole = backdrop.fringe[0] >= 1
    assert abs(float(backdrop.plate[:, hole].mean()) - 0.32) < 0.03
    assert 0.5 < float(backdrop.plate[:, hole].std()) / 0.03 < 1.5


def test_the_plate_carries_a_horizon_across_the_person():
    """A head in front of a horizon (pale sky over dark hills): behind it the fill keeps the sky above the horizon
    and the hills below it, as they run in from either side; an average over the neighbourhood mixes the two into
    a pale blot where the hills should be."""
    g = torch.Generator().manual_seed(0)
    ys, xs = torch.meshgrid(torch.arange(200) + 0.5, torch.arange(200) + 0.5, indexing="ij")
    image = (torch.where(ys < 110, 0.9, 0.3) + 0.02 * torch.randn(3, 200, 200, generator=g)).clamp(0, 1)
    person = ((((xs - 100) / 45) ** 2 + ((ys - 90) / 70) ** 2) < 1).float()[None]
    backdrop = Backdrop.of(image, person)
    hole = backdrop.fringe[0] >= 1
    sky, hills = hole & (ys < 100), hole & (ys > 120)
    assert float(backdrop.plate[:, sky].mean()) > 0.85
    assert float(backdrop.plate[:, hills].mean()) < 0.35


def test_loose_strands_off_the_hair_leave_the_plate():
    """Six dark 1-px strands reaching 10 px out from a person disc over a pale wall with grain (segmentation misses
    them) count as person and are filled in the plate, so they do not stay behind as a ghost outline when the head
    moves away; a dark line as thin but apart from the person (a cable on the wall 12 px off, within the reach) stays
    background."""
    g = torch.Generator().manual_seed(0)
    ys, xs = torch.meshgrid(torch.arange(400) + 0.5, torch.arange(400) + 0.5, indexing="ij")
    r = ((xs - 200) ** 2 + (ys - 200) ** 2).sqrt()
    wall = 0.8 + 0.05 * xs / 400
    image = (wall + 0.005 * torch.randn(3, 400, 400, generator=g)).clamp(0, 1)
    person = (r < 100).float()[None]
    angle = torch.atan2(ys - 200, xs - 200)
    strand = torch.zeros(400, 400, dtype=torch.bool)
    for a in torch.linspace(-2.5, 2.5, 6):
        strand |= ((angle - a).abs() * r < 0.6) & (r >= 100) & (r < 110)
    cable = ((xs - 88).abs() < 0.6) & ((ys - 200).abs() < 15)
    image[:, strand | cable] = 0.3
    backdrop = Backdrop.of(image, person)
    loose = strand & (r > 100 + FRINGE_GROW * 400 + 1)  # beyond the mask's own fringe
    assert float((backdrop.fringe[0][loose] >= 1).float().mean()) > 0.9
    assert (backdrop.plate[:, loose] - wall[loose]).abs().mean() < 0.05
    assert backdrop.fringe[0][cable].max() == 0
    assert torch.equal(backdrop.plate[:, cable], image[:, cable])


def test_resample_keeps_pixels_read_from_nowhere(disc_backdrop):
    """A zero shift returns the source bit for bit (no resampling); a tenth of STILL barely changes it."""
    assert torch.equal(resample(disc_backdrop, torch.zeros(1, 2, 128, 128))[0], disc_backdrop.image)
    tiny = resample(disc_backdrop, torch.full((1, 2, 128, 128), 0.1 * STILL))[0]
    assert (tiny - disc_backdrop.image).abs().max() < 0.15


def test_paste_frames_resamples_the_source_frame_once(setup, monkeypatch):
    """A warp render pasted into the full frame: the identity render is the source frame bit for bit (no
    resampling blur), and a head shift leaves every pixel outside the crop's footprint untouched while moving the
    face; resampling only the box where the map moves gives the frame a resample of the whole footprint gives."""
    _, verts, renderer, pose = setup
    rgb = frames_to_tensor(torch.randint(0, 256, (1, 300, 360, 3), dtype=torch.uint8,
                                         generator=torch.Generator().manual_seed(1)).numpy())[0]
    crop = Crop(torch.tensor([[0.8, 0.0, -20.0], [0.0, 0.8, -10.0]]), 256)  # image px -> crop px
    frame = Backdrop.of(rgb, torch.ones(1, 300, 360))
    still = renderer.warp_map(0, verts[None], pose)
    assert torch.equal(frames_to_tensor(paste_frames(frame, still, crop))[0], rgb)
    moved = renderer.warp_map(0, (verts + torch.tensor([8.0, 0.0, 0.0]))[None], shifted(pose, 8.0))
    pasted = paste_frames(frame, moved, crop)
    out = frames_to_tensor(pasted)[0]
    foot = apply_affine(crop.image_from_crop, torch.tensor([[0.0, 0.0], [256.0, 256.0]]))
    x0, y0 = foot[0].floor().int().tolist()
    x1, y1 = foot[1].ceil().int().tolist()
    outside = torch.ones(300, 360, dtype=torch.bool)
    outside[max(y0, 0):y1, max(x0, 0):x1] = False
    assert torch.equal(out[:, outside], rgb[:, outside])
    face = apply_affine(crop.image_from_crop, verts[:468, :2])
    fx0, fy0 = face.min(0).values.int().tolist()
    fx1, fy1 = face.max(0).values.int().tolist()
    assert (out[:, fy0:fy1, fx0:fx1] - rgb[:, fy0:fy1, fx0:fx1]).abs().mean() > 0.1
    box = warp._moving_box(moved, 256)
    assert box is not None and (box[2] - box[0]) * (box[3] - box[1]) < 0.9 * 256 ** 2  # the head, not the crop
    monkeypatch.setattr(warp, "_moving_box", lambda m, size: (0, 0, size, size))
    whole = paste_frames(frame, moved, crop)
    assert np.abs(whole.astype(int) - pasted).max() <= 1


def lid_band(points: torch.Tensor, a: int, b: int) -> torch.Tensor:
    """Crop pixels [256, 256] of both upper lids' triangles between their lid rings a and b (0 margin, 1 the ring
    above it, 2 the crease) of landmarks [478, 2+]."""
    face = load_canonical()
    right = torch.tensor(UPPER_LID_RINGS)
    ids = torch.stack([right, face.mirror[right]])[:, [a, b]].flatten()
    tris = face.triangles[torch.isin(face.triangles, ids).all(1)]
    return rasterize(points[None], tris, 256, 256).pix_to_face[0] >= 0


def closed_lids(verts: torch.Tensor, gap: float = 1.0) -> torch.Tensor:
    """Landmarks with both upper lids lowered to `gap` px above the lower ones, the ring above each margin 0.6 as
    far (a closed eye as the tracker draws it)."""
    face = load_canonical()
    right = torch.tensor(UPPER_LID_RINGS)
    rings = torch.stack([right, face.mirror[right]])
    target = verts.clone()
    for eye, (upper, lower) in enumerate(EYELIDS):
        drop = verts[lower, 1] - verts[upper, 1] - gap
        target[rings[eye, 0], 1] += drop
        target[rings[eye, 1], 1] += 0.6 * drop
    return target


def brightness(image: torch.Tensor, mask: torch.Tensor) -> float:
    return float(image.mean(0)[mask].mean())


def test_a_closing_lid_shows_skin_not_its_lashes(setup, monkeypatch):
    """Closed lids (`closed_lids`): the band between margin and ring, the closed lid's skin, is as bright as the
    source's lid skin above its lashes, not the source's lash band stretched into a dark smear (which it is when
    the lid reads its source unchanged: the negative control)."""
    source, verts, renderer, pose = setup
    lashes, skin = brightness(source, lid_band(verts, 0, 1)), brightness(source, lid_band(verts, 1, 2))
    assert skin > lashes + 0.05
    target = closed_lids(verts)
    closed = lid_band(target, 0, 1)

    def share(image):  # 0: the lashes' brightness, 1: the skin's
        return (brightness(image, closed) - lashes) / (skin - lashes)

    assert share(renderer.render(0, target[None], pose).image[0]) > 0.5
    monkeypatch.setattr(warp, "LID_UNFOLD", (0.0, warp.LID_UNFOLD[1]))
    monkeypatch.setattr(warp, "LID_SKIN", 0.0)
    assert share(renderer.render(0, target[None], pose).image[0]) < 0.25


def test_a_shadowed_lid_closes_as_skin_not_a_dark_smear(setup, monkeypatch):
    """The same portrait with its upper lids in deep shadow (a third as bright, as under a heavy brow): closed, the
    lids show skin at least 3/4 of LID_SKIN as bright as the face's (0.53 against 0.40 unlifted, the negative
    control), in its colour (not a gain that saturates shadow to orange). Open, nothing is lifted."""
    source, verts, _, pose = setup
    shaded = source.clone()
    shaded[:, lid_band(verts, 0, 1) | lid_band(verts, 1, 2)] *= 0.35
    person = torch.zeros(1, 256, 256)
    person[:, 20:, 40:216] = 1
    renderer = WarpRenderer(Backdrop.of(shaded, person), LandmarkMeshMap(verts), pose, torch.ones(1, 256, 256))
    target = closed_lids(verts)
    closed = lid_band(target, 0, 1)
    skin = float(renderer.skin_mean.mean())
    lit = renderer.render(0, target[None], pose).image[0]
    assert brightness(lit, closed) > 0.75 * warp.LID_SKIN * skin
    hue = lit[:, closed].mean(1) / renderer.skin_mean[0]
    assert float(hue.max() / hue.min()) < 1.3  # the skin's colour, not a redder one
    assert renderer.warp_map(0, verts[None], pose).lids is None
    monkeypatch.setattr(warp, "LID_SKIN", 0.0)
    assert brightness(renderer.render(0, target[None], pose).image[0], closed) < 0.85 * brightness(lit, closed)


def test_the_slit_of_a_nearly_closed_eye_shows_lashes_not_its_white(setup, monkeypatch):
    """Lids lowered to 2 px apart (the tracker keeps a closed eye's lids a few pixels apart, on its lashes): the
    slit between them comes nearer the portrait's lash line than without the change (SLIT never reached: the
    negative control, a paler line of the eye read between the lids). Part of the slit reads the lids' rims
    themselves, which keep their colour."""
    source, verts, renderer, pose = setup
    target = closed_lids(verts, gap=2.0)
    fans = load_canonical().hole_fans()[0]
    slit = rasterize(target[None], fans, 256, 256).pix_to_face[0] >= 0
    shown = brightness(renderer.render(0, target[None], pose).image[0], slit)
    lashes = float(renderer.lash_colour.mean())
    monkeypatch.setattr(warp, "SLIT", (2.0, 3.0))
    white = brightness(renderer.render(0, target[None], pose).image[0], slit)
    assert abs(shown - lashes) < 0.9 * abs(white - lashes)
