"""`python -m reenact.assets [list]` and `python -m reenact.assets download ict`: the model files the project knows.

Downloads are resumable (HTTP Range on a `.part` file), checked against a sha256 when one is given, and
renamed into place only when complete. The ICT-FaceKit model comes from its public GitHub repository (an
archive at a pinned commit), of which only `FaceXModel/` is kept. GitHub builds such archives on request and
does not promise the same bytes twice, so the pin is on content: the sha256 of five upstream files (the neutral
mesh, the blend-shape index and three shapes) must match before the model is installed. EG3D checkpoints are a
manual download.
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
from reenact.ict_basis import cache_dir, default_location, find_model

ICT_URL = "https://github.com/ICT-VGL/ICT-FaceKit/archive/1922d84282a3faf345dbf949c4a63b09f87907bc.zip"
UPSTREAM_SHA256 = {  # files of FaceXModel/ at that commit (identical to ../shared/facemodels/ict-facekit)
    "generic_neutral_mesh.obj": "eedbc2576d8e5ea57f55255b8f98263213a1efb5431d8bfceed1d7aef10271f9",
    "identity000.obj": "918160cf82d541336b4c367cf93199c9827832bde02511b8fbdf9019d6f1a773",
    "jawOpen.obj": "8d84355e10f48b05550980cee385bcd426f4797090da76a20de0535bb2f99f4a",
    "mouthSmile_L.obj": "91794e73cef330f1c7d1f4541723544708536b39d5dd6ed35fd8f83f676b7af4",
    "vertex_indices.json": "4f9b35306299980dd46bee4a6b79bb95dfae1953693b74b35a64f7febfd081a5",
}


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
    digest = file_sha256(part)
    if sha256 and digest != sha256:
        part.unlink()
        raise MissingAssetError(f"{url}: checksum mismatch (sha256 {digest}, expected {sha256}); "
                                "the partial file was removed")
    os.replace(part, dest)
    return dest


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_upstream(folder: Path, source: str) -> None:
    """Refuse a model folder whose pinned upstream files are missing or differ (a wrong commit or a tampered copy)."""
    for name, expected in UPSTREAM_SHA256.items():
        if not (folder / name).is_file():
            raise MissingAssetError(f"{source}: the archive's FaceXModel folder lacks {name}")
        if (digest := file_sha256(folder / name)) != expected:
            raise MissingAssetError(f"{source}: checksum mismatch for {name} (sha256 {digest}, expected {expected}); "
                                    "nothing was installed")


def install_ict(url: str = ICT_URL, sha256: str = "", progress: bool = True) -> Path:
    """Download the repository archive and install its `FaceXModel/` folder as the cached ICT model, after checking
    the pinned upstream files (and the archive's own sha256 when given)."""
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
        check_upstream(staged, url)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staged, target)
    except zipfile.BadZipFile:
        raise MissingAssetError(f"{url}: the download is not a zip archive") from None
    finally:
        shutil.rmtree(staged, ignore_errors=True)
        archive.unlink()  # installed, or of no use
    return target


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m reenact.assets", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command")
    sub.add_parser("list", help="the assets and where they are looked for (the default)")
    d = sub.add_parser("download", help="download an asset")
    d.add_argument("name", choices=("ict",))
    d.add_argument("--url", default=ICT_URL, help="source archive (default: the ICT-FaceKit repository)")
    d.add_argument("--sha256", default="", help="expected sha256 of the archive itself (the pinned upstream files "
                   "are always checked)")
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
