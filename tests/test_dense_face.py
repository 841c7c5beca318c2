"""The dense ICT face in the warp: its basis and cache, the subject fit on real portraits, renders, the pipeline."""
from __future__ import annotations

import logging
from dataclasses import replace

import pytest
import torch

from reenact.canonical import load_canonical
from reenact.dense_face import DenseBasis, _caps, dense_basis, subject_face
from reenact.errors import InputError, MissingAssetError
from reenact.expression import FaceModelConfig, MeshOffsetModel, extract_motion
from reenact.ict import IctModel
from reenact.ict_basis import cache_dir
from reenact.inputs import load_source
from reenact.pipeline import RunConfig, reenact_video
from reenact.scene import build_scene, dense_face
from reenact.warp_render import make_renderer, render_range
from reenact.crop import apply_affine
from reenact.pose import to_image
from reenact.quality import psnr
from reenact.track import track_image
from reenact.warp import DenseMeshMap, WarpRenderer

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def ict_path(shared):
    return shared / "facemodels" / "ict-facekit" / "ict_face_model.npz"


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A fresh model cache for this module: the first load builds and caches both bases."""
    path = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REENACT_CACHE", str(path))
        yield path


@pytest.fixture(scope="module")
def model(ict_path, cache):
    return IctModel.load(ict_path)


@pytest.fixture(scope="module")
def basis(ict_path, cache):
    return dense_basis(ict_path)


@pytest.fixture(scope="module")
def portrait(media, model, basis):
    """s42 at 512 px: (image, tracks, source Motion, its dense face)."""
    rgb = load_source(media / "s42.jpg", 512)
    tracks = track_image(rgb)
    source = extract_motion(tracks, model, ref=0)
    return rgb, tracks, source, subject_face(basis, model, source)


def scene_for(portrait, model, ict_path, coeffs: torch.Tensor | None = None):
    """The scene of the portrait re-expressed with `coeffs` [E] (default: its own) at its own pose."""
    rgb, tracks, source, _ = portrait
    target = source if coeffs is None else replace(source, expression=replace(source.expression, coeffs=coeffs[None]))
    cfg = RunConfig(progress=False, face=FaceModelConfig("ict", str(ict_path)))
    return build_scene(rgb, tracks, source, source, target, model, cfg.crop, cfg.warp.mesh, cfg.face), cfg


def test_basis_is_cached_compact_and_in_the_head_frame(basis, cache, ict_path):
    files = list(cache.glob("ict-dense-*.npz"))
    assert cache_dir() == cache and len(files) == 1 and files[0].stat().st_size < 8e6  # not the 16 MB model
    again = dense_basis(ict_path)
    assert torch.equal(again.faces, basis.faces) and torch.allclose(again.expression, basis.expression, atol=2e-3)
    assert len(basis.faces) > 10 * 852 and basis.faces.max() < len(basis.neutral)
    lm = basis.at_landmarks(basis.neutral)
    assert abs((lm[263] - lm[33]).norm() - 1) < 0.05  # outer eye corners one unit apart
    jaw = basis.expression[basis.names.index("jawOpen")]
    assert basis.at_landmarks(jaw)[152, 1] < -0.1  # opening the jaw lowers the chin


def test_surface_is_open_only_at_the_outline_eyes_and_mouth(basis):
    face = load_canonical()
    lm = basis.at_landmarks(basis.neutral)
    openings = torch.stack([lm[loop].mean(0) for loop in (*face.eye_loops, face.mouth_loop)])
    caps, members = _caps(basis.neutral, basis.faces, openings)
    assert len(caps) == 0 and len(members) == 0  # the nostrils' holes are capped, nothing else is open


def test_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(MissingAssetError, match="reenact.assets download ict"):
        dense_basis(tmp_path / "nowhere.npz")


def test_corrupt_cache_is_rebuilt(basis, cache, ict_path):
    path = next(cache.glob("ict-dense-*.npz"))
    path.write_bytes(b"not an npz")
    assert torch.equal(dense_basis(ict_path).faces, basis.faces)
    assert isinstance(DenseBasis.load(path), DenseBasis)


def test_dense_face_passes_through_the_source_landmarks(portrait, basis):
    _, tracks, source, face = portrait
    coeffs = source.expression.coeffs[:1]
    on_surface = to_image(basis.at_landmarks(face.vertices(coeffs)), source.pose)[0]
    err = (on_surface[:, :2] - tracks.landmarks[0, :468, :2]).norm(dim=-1)
    assert err.median() < 0.5 and err.max() < 3.0, (err.median(), err.max())  # px; about 140 px per unit here
    landmarks = to_image(face.landmarks(coeffs), source.pose)[0, :, :2]  # the surface's points, and the irises
    torch.testing.assert_close(landmarks[:468], on_surface[:, :2], atol=1e-3, rtol=0)
    torch.testing.assert_close(landmarks[468:], tracks.landmarks[0, 468:, :2], atol=1e-3, rtol=0)


def test_source_expression_at_source_pose_reproduces_the_crop(portrait, model, ict_path):
    scene, cfg = scene_for(portrait, model, ict_path)
    assert scene.dense is not None
    renderer = make_renderer(scene, cfg.warp, CPU)
    out = render_range(renderer, scene, 0, 1, CPU)
    assert isinstance(renderer.mesh_map, DenseMeshMap) and out.face.mean() > 0.05
    assert float(psnr(out.image, scene.source_crop[None])) > 40


def _best_shift(source: torch.Tensor, image: torch.Tensor, x: int, y: int, half: int, search: int) -> int:
    """The downward shift (px) at which a patch of `image` best matches the source patch centred at (x, y)."""
    patch = source[:, y - half:y + half, x - half:x + half]
    errors = torch.stack([(image[:, y - half + d:y + half + d, x - half:x + half] - patch).abs().mean()
                          for d in range(search)])
    return int(errors.argmin())


def test_jaw_open_moves_the_chin_down(portrait, model, ict_path):
    source = portrait[2]
    coeffs = source.expression.coeffs[0].clone()
    jaw = source.expression.names.index("jawOpen")
    coeffs[jaw] = (coeffs[jaw] + 0.5).clamp(max=1)
    scene, cfg = scene_for(portrait, model, ict_path, coeffs)
    out = render_range(make_renderer(scene, cfg.warp, CPU), scene, 0, 1, CPU).image[0]
    chin_moved = scene.dense_meshes(scene.target, slice(0, 1))[0][0, 152, 1] - scene.source_verts[152, 1]
    x, y = scene.source_verts[152, :2].round().int().tolist()
    shift = _best_shift(scene.source_crop, out, x, y - 6, 6, 40)
    assert chin_moved > 8 and abs(shift - chin_moved) < 4, (shift, chin_moved)
    ex, ey = scene.source_verts[168, :2].round().int().tolist()  # between the eyes: still
    assert _best_shift(scene.source_crop, out, ex, ey, 8, 10) == 0


def test_mesh_choice(portrait, model, tmp_path, caplog):
    source = portrait[2]
    with pytest.raises(InputError, match="needs the ICT-FaceKit face model"):
        dense_face(MeshOffsetModel(), source, "dense", FaceModelConfig())
    assert dense_face(model, source, "landmarks", FaceModelConfig()) is None
    elsewhere = FaceModelConfig("ict", str(tmp_path / "nowhere.npz"))
    with pytest.raises(MissingAssetError):
        dense_face(model, source, "dense", elsewhere)
    with caplog.at_level(logging.WARNING, logger="reenact"):
        assert dense_face(model, source, "auto", elsewhere) is None  # auto: the landmark mesh, said so
    assert "warp mesh: the landmark mesh" in caplog.text


def test_clip_with_the_ict_model_renders_through_the_dense_face(media, talking_clip, ict_path, cache, tmp_path,
                                                                monkeypatch, caplog):
    calls = []
    draw = WarpRenderer.warp_map
    monkeypatch.setattr(WarpRenderer, "warp_map", lambda s, *a, **k: calls.append(s.mesh_map) or draw(s, *a, **k))
    cfg = RunConfig(progress=False, face=FaceModelConfig("auto", str(ict_path)), end=8)
    with caplog.at_level(logging.INFO, logger="reenact"):
        reenact_video(media / "s42.jpg", talking_clip, tmp_path / "out.mp4", cfg)
    assert (tmp_path / "out.mp4").stat().st_size > 0
    assert calls and all(isinstance(m, DenseMeshMap) for m in calls)
    assert "warp mesh: dense ICT face" in caplog.text


class _NoVideo:
    """A reader without driving frames (the renderer paints a newly opened mouth itself)."""

    def read(self, frames):
        return None


def test_gan_targets_map_through_the_dense_face(portrait, model, ict_path, monkeypatch):
    """The 3D GAN's expression-edited targets (its own crop, the source's pose) come from the dense face: the
    source expression gives back the source, an opened jaw moves the chin by the surface's own geometry."""
    from reenact.crop import warp_affine
    from reenact.gan_render import expression_targets, gan_geometry
    from reenact.structures import Crop

    calls = []
    draw = WarpRenderer.warp_map
    monkeypatch.setattr(WarpRenderer, "warp_map", lambda s, *a, **k: calls.append(s.mesh_map) or draw(s, *a, **k))
    size = 256
    scene, cfg = scene_for(portrait, model, ict_path)
    geo = gan_geometry(scene, size)
    view = Crop(geo.gan_from_scene, size)
    source = warp_affine(scene.source_crop[None], view.image_from_crop[None], (size, size))
    image, face, hole = expression_targets(scene, geo, _NoVideo(), [0], cfg.warp, 8, CPU)
    assert calls and all(isinstance(m, DenseMeshMap) for m in calls)
    assert float(psnr(image.float() / 255, source)) > 35 and face.float().mean() > 0.05 * 255

    coeffs = portrait[2].expression.coeffs[0].clone()
    jaw = portrait[2].expression.names.index("jawOpen")
    coeffs[jaw] = (coeffs[jaw] + 0.5).clamp(max=1)
    scene, cfg = scene_for(portrait, model, ict_path, coeffs)
    geo = gan_geometry(scene, size)
    image, _, hole = expression_targets(scene, geo, _NoVideo(), [0], cfg.warp, 8, CPU)
    chin = apply_affine(view.crop_from_image, scene.dense_meshes(scene.target, slice(0, 1))[0][0, 152:153])[0]
    chin_moved = float(chin[1] - apply_affine(view.crop_from_image, scene.source_verts[152:153])[0, 1])
    x, y = apply_affine(view.crop_from_image, scene.source_verts[152:153])[0, :2].round().int().tolist()
    shift = _best_shift(source[0], image[0].float() / 255, x, y - 4, 4, 24)
    assert chin_moved > 4 and abs(shift - chin_moved) < 3, (shift, chin_moved)
    assert hole.sum() > 0  # the parted lips leave a mouth hole for the inpainting
