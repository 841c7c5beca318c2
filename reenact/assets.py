"""`python -m reenact.assets [list]` and `python -m reenact.assets download ict`: the model files the project knows.

Downloads are resumable (HTTP Range on a `.part` file), checked against a sha256 when one is pinned, and
renamed into place only when complete. The ICT-FaceKit model comes from its public GitHub repository (an
archive at a pinned commit), of which only `FaceXModel/` is kept. EG3D checkpoints are a manual download.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from reenact.errors import MissingAssetError, ReenactError
from reenact.ict import cache_dir, default_location, find_model

ICT_URL = "https://github.com/ICT-VGL/ICT-FaceKit/archive/1922d84282a3faf345dbf949c4a63b09f87907bc.zip"
ICT_SHA256 = ""  # not yet pinned: the archive could not be fetched where this was written; set it once known


@dataclass(frozen=True)
class Asset:
    name: str
    what: str
    looked_for: str
    source: str


def known_assets() -> list[Asset]:
    ict = find_model()
    return [
        Asset("ict", "ICT-FaceKit light face model (MIT): 3DMM with 53 ARKit expressions",
              f"--face.path, $REENACT_FACE_MODEL, {default_location()} -> "
              f"{'found: ' + str(ict) if ict else 'not found'}",
              f"python -m reenact.assets download ict ({ICT_URL})"),
        Asset("eg3d-ffhq", "EG3D FFHQ generator ffhq512-128.pkl / ffhqrebalanced512-128.pkl",
              "--gan.generator PATH", "manual download: NVIDIA NGC, model 'EG3D' (nvidia/research/eg3d)"),
    ]


def download(url: str, dest: Path, sha256: str = "", progress: bool = True) -> Path:
    """Fetch `url` to `dest`, resuming a previous `.part`, checking `sha256` when given; atomic rename."""
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    part.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            resumed = response.status == 206
            total = int(response.headers.get("Content-Length", 0)) + (have if resumed else 0)
            with open(part, "ab" if resumed else "wb") as fh, tqdm(
                    total=total or None, initial=have if resumed else 0, unit="B", unit_scale=True,
                    desc=dest.name, disable=not progress) as bar:
                for block in iter(lambda: response.read(1 << 20), b""):
                    fh.write(block)
                    bar.update(len(block))
    except urllib.error.HTTPError as exc:
        if exc.code != 416:  # 416: the part file is already complete
            raise MissingAssetError(f"{url}: download failed (HTTP {exc.code})") from None
    except (urllib.error.URLError, OSError) as exc:
        raise MissingAssetError(f"{url}: download failed ({exc}); run the command again to resume") from None
    digest = hashlib.sha256()
    with open(part, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    if sha256 and digest.hexdigest() != sha256:
        part.unlink()
        raise MissingAssetError(f"{url}: checksum mismatch (sha256 {digest.hexdigest()}, expected {sha256}); "
                                "the partial file was removed")
    os.replace(part, dest)
    return dest


def install_ict(url: str = ICT_URL, sha256: str = ICT_SHA256, progress: bool = True) -> Path:
    """Download the repository archive and install its `FaceXModel/` folder as the cached ICT model."""
    archive = download(url, cache_dir() / "downloads" / "ict-facekit.zip", sha256, progress)
    target = default_location()
    staged = Path(tempfile.mkdtemp(prefix=".ict-facekit-", dir=cache_dir()))
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [m for m in zf.namelist() if "/FaceXModel/" in f"/{m}" and not m.endswith("/")]
            if not members:
                raise MissingAssetError(f"{url}: the archive holds no FaceXModel folder")
            for m in members:
                with zf.open(m) as src, open(staged / Path(m).name, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        if find_model(staged) is None:
            raise MissingAssetError(f"{url}: the archive's FaceXModel folder lacks the neutral mesh")
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staged, target)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    archive.unlink()
    return target


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m reenact.assets", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command")
    sub.add_parser("list", help="the assets and where they are looked for (the default)")
    d = sub.add_parser("download", help="download an asset")
    d.add_argument("name", choices=("ict",))
    d.add_argument("--url", default=ICT_URL, help="source archive (default: the ICT-FaceKit repository)")
    d.add_argument("--sha256", default=ICT_SHA256, help="expected sha256 of the archive")
    args = p.parse_args(argv)
    try:
        if args.command == "download":
            print(f"installed the ICT-FaceKit model at {install_ict(args.url, args.sha256)}")
            return 0
    except ReenactError as exc:
        print(f"reenact: {exc}", file=sys.stderr)
        return 2
    for asset in known_assets():
        print(f"{asset.name}: {asset.what}\n  looked for: {asset.looked_for}\n  get it: {asset.source}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
