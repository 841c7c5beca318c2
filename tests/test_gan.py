"""The 3D GAN path on the small oracle EG3D (128 px, random weights): projection, tuning, masks, cameras, CLI."""
import shutil

import numpy as np
import pytest
import torch

from reenact.eg3d import frontal_label, load_generator, lookat_label, mirror_label
from reenact.eg3d.volume import sample_rays
from reenact.gan_render import face_points, reproject_mask
from reenact.symmetry import filtered_masks, mirror_points, mirrored_views, spi_weight, symmetry_filter
from reenact.invert import (interpolate_latents, keyframe_indices, lr_ramp, project, project_sequence, render,
                            w_stats)
from reenact.losses import ImageLoss, VGG16Features, load_vgg16
from reenact.run import main
from reenact.structures import Latents
from reenact.tune import inpaint_mouth, tune_generator
from third_party_wrappers.video import VideoWriter, open_video

SIZE = 128


@pytest.fixture(scope="module")
def tiny_path(shared):
    return shared / "oracles" / "eg3d" / "small" / "G_ema_state_dict.pt"


@pytest.fixture()
def G(tiny_path):
    return load_generator(tiny_path)


def truth(G, seed=0, yaw=0.3):
    """A target rendered at a known latent and camera."""
    torch.manual_seed(seed)
    w = G.mapping(torch.randn(1, G.z_dim), frontal_label(1))[0]
    c = lookat_label([yaw], [0.0])
    with torch.no_grad():
        return w, c, render(G, w[None], c)


def mouth_mask(size=SIZE):
    """1 everywhere except a mouth-shaped box in the lower middle."""
    mask = torch.ones(1, 1, size, size)
    mask[..., int(0.62 * size):int(0.78 * size), int(0.36 * size):int(0.64 * size)] = 0
    return mask


def test_lr_ramp_and_keyframes():
    assert lr_ramp(0.0) == 0 and lr_ramp(0.5) == pytest.approx(1) and lr_ramp(1.0) == pytest.approx(0)
    assert keyframe_indices(10, 4) == [0, 4, 8, 9] and keyframe_indices(3, 1) == [0, 1, 2]
    lat = Latents(torch.stack([torch.zeros(2, 4), torch.ones(2, 4)]), torch.tensor([0, 4]), torch.zeros(2))
    w = interpolate_latents(lat, torch.arange(6))
    assert torch.allclose(w[:, 0, 0], torch.tensor([0, 0.25, 0.5, 0.75, 1, 1]))


def test_masked_pixels_get_exactly_zero_gradient():
    pred = torch.rand(2, 3, 32, 32, requires_grad=True)
    mask = torch.ones(2, 1, 32, 32)
    mask[..., 10:20, 8:24] = 0
    ImageLoss()(pred, torch.rand(2, 3, 32, 32), mask).sum().backward()
    hole = (mask == 0).expand_as(pred)
    assert pred.grad[hole].abs().max() == 0 and pred.grad[~hole].abs().sum() > 0


def test_perceptual_loss_from_a_state_dict(tmp_path):
    vgg = VGG16Features()
    torch.save({f"features.{k}": v for k, v in vgg.convs.state_dict().items()}, tmp_path / "vgg16.pt")
    loss = ImageLoss(vgg=load_vgg16(tmp_path / "vgg16.pt"))
    assert loss.perceptual > 0 and loss(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)).shape == (1,)
    assert load_vgg16(tmp_path / "absent.pt") is None  # a warning, never a failure


def test_projection_lowers_masked_loss(G):
    w_true, c, target = truth(G)
    mask = mouth_mask()
    loss_fn = ImageLoss()
    w_avg, w_std = w_stats(G, frontal_label(1), n=64)
    with torch.no_grad():
        before = float(loss_fn(render(G, w_avg[None], c), target, mask))
    w, after = project(G, (target, mask, c), w_avg, loss_fn, steps=12, w_std=w_std, lr=0.1)
    assert after < before / 4
    assert w.shape == w_avg.shape and torch.equal(w[0], w[-1])  # W space: one w for all layers


def test_warm_start_and_w_plus(G):
    w_true, c, target = truth(G)
    loss_fn = ImageLoss(ssim=0)
    views = lambda frame: (target, mouth_mask(), c)  # noqa: E731
    saved = []
    lat = project_sequence(G, [0, 2], views, loss_fn, w_avg=w_true, w_std=0.0, steps_first=0, steps_per_frame=2,
                           on_saved=saved.append, save_every=1, w_plus=True, noise_weight=0)
    assert lat.w.shape == (2, *w_true.shape) and lat.frames.tolist() == [0, 2] and len(saved) == 2
    assert torch.equal(lat.w[0], w_true)  # zero steps leave the start point
    assert not torch.equal(lat.w[1][0], lat.w[1][-1])  # W+: layers move independently


def test_tuning_changes_only_generator_weights(G, tmp_path):
    w_true, c, target = truth(G)
    ws, targets = w_true[None].clone(), (target * 0.5).clone()
    before = {k: v.clone() for k, v in G.state_dict().items()}
    tune_generator(G, ws, targets, c, ImageLoss(), steps=3, lr=1e-2, checkpoint=tmp_path / "ckpt.pt",
                   checkpoint_every=1, locality=0.1)
    assert torch.equal(ws, w_true[None]) and torch.equal(targets, target * 0.5)
    changed = [k for k, v in G.state_dict().items() if not torch.equal(v, before[k])]
    assert changed and all(k in dict(G.named_parameters()) for k in changed)
    assert not any(p.requires_grad for p in G.parameters())
    assert (tmp_path / "ckpt.pt").exists()  # the last checkpoint (step 2) lets a rerun resume


def test_mouth_inpainting_fills_only_around_the_hole():
    target, fill = torch.zeros(1, 3, 64, 64), torch.ones(1, 3, 64, 64)
    hole = torch.zeros(1, 1, 64, 64)
    hole[..., 30:34, 30:34] = 1
    out = inpaint_mouth(target, hole, fill, grow=8, blur=(5, 1.0))
    assert out[0, :, 32, 32].min() == pytest.approx(1, abs=1e-3) and out[0, :, 2, 2].abs().max() < 1e-6


def test_mirrored_view_uses_the_mirrored_camera():
    target, mask, c = torch.rand(1, 3, 16, 16), torch.rand(1, 1, 16, 16), lookat_label([0.4], [0.1])
    t, m, cams = mirrored_views(target, mask, c)
    assert torch.equal(cams[1], mirror_label(c)[0]) and torch.equal(t[1], target[0].flip(-1))
    assert torch.equal(m[1], mask[0].flip(-1)) and torch.equal(cams[0], c[0])
    yaw_m = lookat_label([-0.4], [0.1])
    assert torch.allclose(cams[1, [3, 7, 11]], yaw_m[0, [3, 7, 11]], atol=1e-5)


def test_mirrored_camera_sees_the_mirrored_rays():
    c = lookat_label([0.4], [-0.1])
    c[:, 18] = 0.56  # an off-centre principal point, and a skew
    c[:, 17] = 0.02
    rays = [sample_rays(x[:, :16].view(-1, 4, 4), x[:, 16:].view(-1, 3, 3), 16) for x in (c, mirror_label(c))]
    flip = torch.tensor([-1.0, 1.0, 1.0])
    for a, b in zip(*rays):  # origins, directions: pixel (i, j) of the mirror = x-mirror of pixel (i, 15 - j)
        assert torch.allclose(b.view(16, 16, 3), (a.view(16, 16, 3) * flip).flip(1), atol=1e-5)


def test_spi_weight_is_zero_below_0_2_rad():
    assert spi_weight(0.0) == spi_weight(0.19) == spi_weight(-0.19) == 0
    assert spi_weight(0.2) == pytest.approx(0.30, abs=0.005) and spi_weight(-0.4) == spi_weight(0.4)
    assert spi_weight(0.2) < spi_weight(0.4) < spi_weight(0.8) < 0.5 and spi_weight(1.5) == pytest.approx(0.5, abs=1e-4)


def plane_depth(c, size):
    """Ray distances [1,1,S,S] from camera c to the plane z = 0: a flat, unoccluded, symmetric 'face'."""
    origins, dirs = sample_rays(c[:, :16].view(-1, 4, 4), c[:, 16:].view(-1, 3, 3), size)
    return (-origins[..., 2] / dirs[..., 2]).view(1, 1, size, size)


def test_symmetry_filter_drops_a_one_sided_region_unless_its_mirror_is_hidden():
    s, c = 64, lookat_label([0.4], [0.0])
    depth = plane_depth(c, s)
    grid, visible = mirror_points(c, depth, s)
    y, x = s // 2, int(0.75 * s)
    mx, my = ((grid[0, y, x] + 1) * s / 2 - 0.5).round().long().tolist()  # where the blob's mirror point is seen
    assert visible[0, 0, y, x] and abs(mx - x) > 10
    target = torch.full((1, 3, s, s), 0.5)
    assert torch.equal(symmetry_filter(target, c, depth), torch.ones(1, 1, s, s))  # symmetric: nothing dropped
    target[..., y - 3:y + 4, x - 3:x + 4] = 1.0  # a one-sided blob
    weight = symmetry_filter(target, c, depth)  # pseudo-view pixels: mirrored
    assert weight[0, 0, y, s - 1 - x] < 1e-3  # the pseudo pixel that would copy the blob to the other side
    assert weight[0, 0, my, s - 1 - mx] < 1e-3  # the one that would paint the plain side over the blob
    assert (weight < 0.5).float().mean() < 0.06 and weight[0, 0, :, :10].min() > 0.999
    occluded = depth.clone()
    occluded[..., my - 6:my + 7, mx - 6:mx + 7] -= 0.3  # something in front of the blob's mirror point
    assert symmetry_filter(target, c, occluded).min() > 0.999  # unobserved: the pseudo view is the only evidence


def test_filtered_masks_follow_the_rendered_depth(G):
    w_true, c, target = truth(G, yaw=0.4)
    views = mirrored_views(target, mouth_mask(), c)
    seen = []

    def mask_fn(depth):
        seen.append(depth.shape)
        return filtered_masks(target, views[1], c)(depth) * 0  # nothing supervised: w must not move

    w, loss = project(G, views, w_true, ImageLoss(), steps=2, noise_weight=0, mask_fn=mask_fn)
    assert seen == [(2, 1, 32, 32)] * 2 and loss == 0 and torch.equal(w, w_true)
    with torch.no_grad():
        depth = G.synthesis(w_true[None], c, noise_mode="const")["image_depth"]
    masks = filtered_masks(target, views[1], c)(torch.cat([depth, depth]))
    assert torch.equal(masks[0], views[1][0]) and torch.all(masks[1] <= views[1][1])


def test_reprojected_face_mask_round_trips_and_moves_with_the_camera(G):
    w, c, _ = truth(G, yaw=0.0)
    with torch.no_grad():
        depth = G.synthesis(w[None], c, noise_mode="const")["image_depth"]
    face = torch.zeros(1, 1, SIZE, SIZE)
    face[..., 40:90, 45:85] = 1
    pts = face_points(depth, c, face)
    back = reproject_mask(pts, torch.cat([c, lookat_label([0.4], [0.0])]), SIZE)
    iou = ((back[0] > 0.5) & (face[0] > 0.5)).sum() / ((back[0] > 0.5) | (face[0] > 0.5)).sum()
    assert iou > 0.85
    assert not torch.allclose(back[1], back[0], atol=0.1)


@pytest.fixture(scope="module")
def cli_inputs(media, tmp_path_factory, tiny_path):
    root = tmp_path_factory.mktemp("gan")
    shutil.copy(tiny_path, root / "tiny_state_dict.pt")
    shutil.copy(tiny_path.with_name("config.json"), root / "tiny_state_dict.json")
    with open_video(media / "d3.mp4") as reader:
        frames, fps = reader.read(list(range(100, 106))), reader.info.fps
    with VideoWriter(root / "short_clip.mp4", fps, frames.shape[2], frames.shape[1]) as writer:
        writer.write(frames)
    return media / "s42.jpg", root / "short_clip.mp4", root


def test_video_path_end_to_end(cli_inputs, tmp_path):
    source, clip, root = cli_inputs
    out, work = tmp_path / "out.mp4", tmp_path / "work"
    args = [str(source), str(clip), "-o", str(out), "--work-dir", str(work), "-q",
            "--generator", str(root / "tiny_state_dict.pt"), "--steps-first", "20", "--steps-per-frame", "3",
            "--tune-steps", "5", "--keyframe-every", "5", "--gan.w-avg-samples", "64"]
    assert main(args) == 0
    with open_video(out) as reader:
        assert reader.info.n_frames == 6
    assert len(list(work.glob("gan-latents-*.npz"))) == 1 and len(list(work.glob("gan-tuned-*.pt"))) == 1
    assert not list(work.glob("gan-tune-ckpt-*"))
    mtime = next(work.glob("gan-tuned-*.pt")).stat().st_mtime
    for seg in work.glob("segments-*"):
        shutil.rmtree(seg)
    assert main(args) == 0  # the re-render reuses latents and tuned weights
    assert next(work.glob("gan-tuned-*.pt")).stat().st_mtime == mtime


def test_motion_without_video_compares_with_its_landmarks(cli_inputs, tmp_path):
    """--compare on the GAN path for a driving motion without video: the driving panel shows the motion's
    landmarks (light dots on dark grey), as on the warp path."""
    source, clip, root = cli_inputs
    tracks, out = tmp_path / "t.npz", tmp_path / "out.mp4"
    assert main([str(source), str(clip), "-o", str(tmp_path / "warp.mp4"), "-q", "--no-cache",
                 "--export-tracks", str(tracks)]) == 0
    assert main([str(source), "--tracks", str(tracks), "-o", str(out), "-q", "--no-cache", "--compare",
                 "--generator", str(root / "tiny_state_dict.pt"), "--steps-first", "10", "--steps-per-frame", "2",
                 "--tune-steps", "2", "--keyframe-every", "5", "--gan.w-avg-samples", "64"]) == 0
    with open_video(out) as reader:
        frames = reader.read(list(range(reader.info.n_frames)))
    h, w = frames.shape[1:3]
    assert len(frames) == 6 and w == 3 * h  # motion panel | source | result
    panel = frames[:, :, : w // 3].astype(float)
    assert abs(float(np.median(panel)) - 0.12 * 255) < 8  # the dark grey background
    dots = (panel > 0.6 * 255).mean()
    assert 0.002 < dots < 0.2, dots


@pytest.mark.parametrize("content", [None, b"PK\x03\x04 truncated", b"\x80\x04not a pickle"])
def test_bad_checkpoint_is_one_line_exit_2(cli_inputs, tmp_path, capsys, content):
    source, clip, _ = cli_inputs
    ckpt = tmp_path / "g.pkl"
    if content is not None:
        ckpt.write_bytes(content)
    code = main([str(source), str(clip), "-o", str(tmp_path / "o.mp4"), "-q", "--generator", str(ckpt)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and str(ckpt) in err
    assert not (tmp_path / "o.mp4").exists()
