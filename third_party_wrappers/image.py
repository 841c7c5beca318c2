"""Thin adapter over PIL: every still image enters and leaves the project as uint8 [H,W,3] RGB through here."""

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from reenact.errors import InputError

_SIXTEEN_BIT = {"I;16", "I;16L", "I;16B", "I;16N", "I"}
_ALPHA = {"RGBA", "LA", "La", "RGBa", "PA"}


def read_image(path) -> np.ndarray:
    """Read an image file as uint8 [H,W,3] RGB, upright as its EXIF orientation says.

    Alpha is composited on white (transparent portraits would otherwise get a black background),
    16-bit samples keep their top 8 bits (not clipped), CMYK/grayscale/palette are converted to RGB.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: empty file")
    try:
        with Image.open(path) as img:
            img.load()
            img = ImageOps.exif_transpose(img)
            return _to_rgb(img)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        reason = " ".join(str(e).split()) or type(e).__name__
        raise InputError(f"{path}: not a readable image ({reason})") from None


def _to_rgb(img: Image.Image) -> np.ndarray:
    """Convert any PIL mode to uint8 RGB."""
    if img.mode in _SIXTEEN_BIT:
        grey = (np.asarray(img).astype(np.int64) >> 8).clip(0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if img.mode == "F":
        grey = np.asarray(img).clip(0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in _ALPHA:
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float32)
        alpha = rgba[..., 3:] / 255.0
        return (rgba[..., :3] * alpha + 255.0 * (1.0 - alpha) + 0.5).astype(np.uint8)
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def write_image(path, rgb: np.ndarray) -> None:
    """Write uint8 [H,W,3] RGB atomically (temp file in the same folder, then os.replace); format from the suffix."""
    path = Path(path)
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"write_image expects uint8 [H,W,3], got {rgb.dtype} {rgb.shape}")
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: unknown image format for suffix {path.suffix!r}")
    options = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    _atomic_save(path, lambda f: Image.fromarray(rgb).save(f, format=fmt, **options))


def write_gif(path, frames: np.ndarray, fps: float) -> None:
    """Write uint8 [N,H,W,3] RGB frames as a looping animated GIF, atomically."""
    images = [Image.fromarray(np.asarray(f)) for f in frames]
    _atomic_save(Path(path), lambda f: images[0].save(f, format="GIF", save_all=True, append_images=images[1:],
                                                       duration=round(1000 / fps), loop=0))


def _atomic_save(path: Path, save) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        with open(tmp, "wb") as f:
            save(f)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
