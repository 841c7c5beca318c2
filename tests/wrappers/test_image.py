"""read_image/write_image on synthetic odd-mode images and the shared test photos."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reenact.errors import InputError
from third_party_wrappers.image import read_image, write_image

MEDIA = Path(__file__).resolve().parents[2].parent / "shared" / "media"
needs_media = pytest.mark.skipif(not MEDIA.is_dir(), reason="shared test media absent")


def _gradient(h=40, w=60) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 4, y * 6, np.full_like(x, 128)], axis=-1).astype(np.uint8)


def test_exif_orientation_is_applied(tmp_path):
    rgb = _gradient()
    rgb[:5, :5] = [255, 0, 0]  # red marker in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # stored image must be turned 90 degrees clockwise to display
    Image.fromarray(rgb).save(tmp_path / "rot.jpg", exif=exif, quality=98)
    out = read_image(tmp_path / "rot.jpg")
    assert out.shape == (60, 40, 3)
    assert out[:5, -5:].mean(axis=(0, 1))[0] > 200  # marker now top-right
    assert abs(out.astype(int) - np.rot90(rgb, -1)).mean() < 4


def test_grayscale_becomes_rgb(tmp_path):
    Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16), "L").save(tmp_path / "g.png")
    out = read_image(tmp_path / "g.png")
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8
    assert (out[..., 0] == out[..., 2]).all() and out[15, 15, 0] == 255


def test_rgba_is_composited_on_white(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:4, :, 3] = 255  # top half opaque red-ish, bottom half fully transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = read_image(tmp_path / "a.png")
    assert (out[:4] == [200, 0, 0]).all() and (out[4:] == 255).all()


def test_palette_with_transparency(tmp_path):
    img = Image.new("P", (4, 4), 1)
    img.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    img.info["transparency"] = 0
    img.putpixel((0, 0), 0)
    img.save(tmp_path / "p.png", transparency=0)
    out = read_image(tmp_path / "p.png")
    assert (out[0, 0] == 255).all() and (out[1, 1] == [10, 20, 30]).all()


def test_sixteen_bit_png_keeps_top_bits(tmp_path):
    grey = np.array([[0, 256, 32768, 65535]], dtype=np.uint16)
    Image.fromarray(grey).save(tmp_path / "d.png")
    assert Image.open(tmp_path / "d.png").mode.startswith("I")
    assert read_image(tmp_path / "d.png")[0, :, 0].tolist() == [0, 1, 128, 255]


def test_cmyk_jpeg(tmp_path):
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(tmp_path / "c.jpg")
    out = read_image(tmp_path / "c.jpg")
    assert out.shape == (8, 8, 3) and out[..., 0].mean() > 200 and out[..., 1:].mean() < 40


def test_webp_round_trip(tmp_path):
    rgb = _gradient()
    write_image(tmp_path / "x.webp", rgb)
    assert abs(read_image(tmp_path / "x.webp").astype(int) - rgb).mean() < 4


def test_png_write_is_lossless_and_atomic(tmp_path):
    rgb = _gradient()
    write_image(tmp_path / "x.png", rgb)
    assert (read_image(tmp_path / "x.png") == rgb).all()
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]
    with pytest.raises(ValueError):
        write_image(tmp_path / "y.png", rgb.astype(np.float32))
    assert not (tmp_path / "y.png").exists()


@pytest.mark.parametrize("content", [None, b"", b"not an image at all" * 10, b"\x89PNG\r\n\x1a\n" + b"\0" * 40])
def test_bad_files_raise_input_error(tmp_path, content):
    path = tmp_path / "bad.png"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError) as e:
        read_image(path)
    assert str(e.value).startswith(f"{path}: ") and "\n" not in str(e.value)


@needs_media
@pytest.mark.parametrize("name,shape", [("s42.jpg", (512, 512, 3)), ("s9.jpg", (1280, 720, 3)),
                                        ("s12.jpg", (500, 375, 3)), ("obama.jpg", (1137, 910, 3))])
def test_shared_photos(name, shape):
    out = read_image(MEDIA / name)
    assert out.shape == shape and out.dtype == np.uint8
