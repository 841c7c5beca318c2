"""EG3D's crop (`eg3d_crop`) against its recipe, the EG3D camera model and a real portrait."""
import importlib.util
from pathlib import Path

import pytest
import torch

from reenact.crop import (BFM_FIVE, EYE_LEFT, EYE_RIGHT, MOUTH_CORNERS, NOSE_TIP, CropConfig, apply_affine,
                          eg3d_crop, ffhq_crop)
from reenact.eg3d import lookat_label
from reenact.geometry import angles_to_matrix
from reenact.track import track_image
from third_party_wrappers.image import read_image

FIVE = [EYE_RIGHT, EYE_LEFT, NOSE_TIP, *MOUTH_CORNERS]


def landmarks_with(five: torch.Tensor) -> torch.Tensor:
    """A [478, 3] landmark array whose five crop points are `five` [5, 2] (the rest is ignored)."""
    lm = torch.zeros(478, 3)
    lm[FIVE, :2] = five
    return lm


def test_template_seen_at_a_known_scale_and_place_gives_the_recipe_crop():
    """The template under any head rotation, scaled by k and projected orthographically with its origin at t:
    the crop is axis-aligned, 700/300 k px wide, centred on t."""
    template = torch.tensor(BFM_FIVE)
    k, t = 80.0, torch.tensor([310.0, 205.0])
    for angles in ([0.0, 0.0, 0.0], [25.0, -10.0, 0.0], [-15.0, 5.0, 12.0]):
        rot = angles_to_matrix(torch.tensor([angles]))[0].float()
        image = (template @ rot.T)[:, :2] * k + t  # image-from-head rotations: y down
        crop = eg3d_crop(landmarks_with(image), 512)
        a = crop.crop_from_image
        side = 512 / a[0, 0]
        assert a[0, 1] == 0 and a[1, 0] == 0 and a[0, 0] == a[1, 1]  # no in-plane turn: roll stays in the camera
        assert apply_affine(a, t[None])[0].tolist() == pytest.approx([256, 256], abs=0.01)
        assert float(side) == pytest.approx(700 / 300 * k, rel=1e-4)


@pytest.mark.parametrize("yaw, pitch", [(0.0, 0.0), (0.0, -0.2), (0.3, 0.0)])
def test_crop_frames_the_face_where_the_eg3d_camera_sees_it(yaw, pitch):
    """The template placed as EG3D's camera derivation places the face (BFM x 0.27, offset (0, 0.006, 0.161)),
    seen through label cameras at 512 px: the crop is close to the whole image (its centre within 3 % of the side,
    its scale within 9 %, the known gap between EG3D's crops and its label cameras)."""
    world = torch.tensor(BFM_FIVE) * 0.27 + torch.tensor([0.0, 0.006, 0.161])
    c = lookat_label([yaw], [pitch])[0]
    c2w, k = c[:16].view(4, 4), c[16:].view(3, 3)
    uv = ((world - c2w[:3, 3]) @ c2w[:3, :3]) @ k.T
    crop = eg3d_crop(landmarks_with(uv[:, :2] / uv[:, 2:] * 512), 512).crop_from_image
    centre = apply_affine(crop, torch.tensor([[256.0, 256.0]]))[0]
    assert (centre - 256).abs().max() < 0.03 * 512
    assert float(crop[0, 0]) == pytest.approx(1, abs=0.09)


def test_eg3d_crop_of_a_portrait_is_higher_and_tighter_than_ffhq(media):
    """On a real frontal portrait: the eyes ~38 % from the top (EG3D's framing), not ~47 % (FFHQ's)."""
    lm = track_image(read_image(media / "s42.jpg")).landmarks[0]
    eyes = lm[[EYE_RIGHT, EYE_LEFT], :2].mean(0, keepdim=True)
    eg3d, ffhq = eg3d_crop(lm, 512), ffhq_crop(lm, CropConfig(size=512, scale=1.0))
    assert float(apply_affine(eg3d.crop_from_image, eyes)[0, 1]) / 512 == pytest.approx(0.38, abs=0.025)
    assert float(apply_affine(ffhq.crop_from_image, eyes)[0, 1]) / 512 == pytest.approx(0.47, abs=0.025)
    assert 0.85 < float(ffhq.crop_from_image[0, 0] / eg3d.crop_from_image[0, 0]) < 1.0


class PhotoGenerator(torch.nn.Module):
    """A stand-in generator whose every render, at any latent and camera, is one fixed photo crop."""

    def __init__(self, image: torch.Tensor):
        super().__init__()
        self.register_buffer("image", image)
        self.anchor = torch.nn.Parameter(torch.zeros(()))
        self.img_resolution, self.z_dim = image.shape[-1], 8

    def mapping(self, z, c, truncation_psi=1.0):
        return torch.zeros(len(z), 2, 4)

    def synthesis(self, ws, c, noise_mode="const"):
        return {"image": self.image[None].expand(len(ws), -1, -1, -1) * 2 - 1}


def test_framing_check_reads_the_crop_of_a_render_back(media):
    """`bench/gan_framing.py`'s `framing` on renders that are a portrait's EG3D crop reports no offset and scale 1;
    renders framed by the FFHQ recipe (the GAN path's old crop) show their ~9 % downward shift."""
    from reenact.crop import warp_affine
    from reenact.inputs import load_source, frames_to_tensor

    spec = importlib.util.spec_from_file_location("gan_framing", Path(__file__).parents[1] / "bench/gan_framing.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)

    rgb = load_source(media / "s42.jpg", 512)
    lm = track_image(rgb).landmarks[0]
    photo = frames_to_tensor(rgb[None])
    results = {}
    for name, crop in (("eg3d", eg3d_crop(lm, 256)), ("ffhq", ffhq_crop(lm, CropConfig(size=256, scale=0.89)))):
        image = warp_affine(photo, crop.image_from_crop[None], (256, 256))[0]
        results[name] = bench.framing(PhotoGenerator(image), torch.tensor([[0.0, 0.0]]), [0, 1])
    eg3d, ffhq = results["eg3d"], results["ffhq"]
    assert eg3d.offset.abs().max() < 0.01 and (eg3d.scale - 1).abs().max() < 0.02
    assert ffhq.offset[..., 1].min() < -0.06  # the render's centre sits high in the face's EG3D crop
    assert eg3d.tracked[..., 0].abs().max() < 10  # s42 faces the camera
