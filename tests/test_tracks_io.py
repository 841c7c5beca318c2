"""Tracks export/import round trips, per-coefficient transfer scales, and the resumable download on 127.0.0.1."""
from __future__ import annotations

import http.server
import threading
import zipfile
from functools import partial

import pytest
import torch

from reenact import assets
from reenact.errors import InputError, MissingAssetError
from reenact.geometry import angles_to_matrix
from reenact.ict import MODEL
from reenact.ict_basis import find_model
from reenact.structures import Expression, HeadPose, Motion
from reenact.export_tracks import main
from reenact.tracks_io import ARKIT, ICT_NAMES, load_tracks, save_tracks, timecode
from reenact.transfer import TransferConfig, transfer


def motion(n: int = 40) -> Motion:
    g = torch.Generator().manual_seed(1)
    coeffs = torch.rand(n, 53, generator=g)
    for name in ("browInnerUp", "cheekPuff"):  # one ARKit column each: export keeps their mean only
        left, right = ICT_NAMES.index(name + "_L"), ICT_NAMES.index(name + "_R")
        coeffs[:, right] = coeffs[:, left]
    angles = torch.randn(n, 3, generator=g) * 10
    pose = HeadPose(angles_to_matrix(angles), torch.zeros(n, 3), torch.ones(n))
    return Motion(pose, Expression(coeffs, MODEL, list(ICT_NAMES)), torch.zeros(478, 3), torch.ones(n, dtype=torch.bool),
                  30.0, 0)


def test_track_command_defaults_to_the_runs_face_model(talking_clip, tmp_path, monkeypatch, capsys):
    """Without the ICT model, `python -m reenact.export_tracks` writes .npz tracks with the run's default (auto: the
    mesh-offset model), and refuses CSV, which holds the ICT model's named coefficients, with the one-line error."""
    monkeypatch.setenv("REENACT_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.delenv("REENACT_FACE_MODEL", raising=False)
    assert main([str(talking_clip), "-o", str(tmp_path / "t.npz"), "-q"]) == 0
    written = load_tracks(tmp_path / "t.npz")
    assert len(written) == 48 and written.expression.model == "mesh-offset"
    assert main([str(talking_clip), "-o", str(tmp_path / "t.csv"), "-q"]) == 2
    assert "ICT-FaceKit face model was not found" in capsys.readouterr().err
    assert not (tmp_path / "t.csv").exists()


@pytest.mark.parametrize("suffix", [".csv", ".json", ".npz"])
def test_round_trip(tmp_path, suffix):
    m = motion()
    save_tracks(m, tmp_path / f"t{suffix}")
    back = load_tracks(tmp_path / f"t{suffix}")
    torch.testing.assert_close(back.expression.coeffs, m.expression.coeffs, atol=1e-5, rtol=0)
    torch.testing.assert_close(back.pose.angles(), m.pose.angles(), atol=1e-3, rtol=0)
    assert back.expression.names == m.expression.names and back.fps == 30.0


def test_csv_is_live_link_face_layout(tmp_path):
    save_tracks(motion(3), tmp_path / "t.csv")
    header, first = (tmp_path / "t.csv").read_text().splitlines()[:2]
    cols = header.split(",")
    assert cols[:3] == ["Timecode", "BlendShapeCount", "EyeBlinkLeft"] and cols[-3:] == ["HeadYaw", "HeadPitch", "HeadRoll"]
    assert len(cols) == 2 + 52 + 3 and len(ARKIT) == 52 and first.split(",")[1] == "52"
    assert timecode(61, 30.0) == "00:00:02:01.000"


def test_mesh_offset_codes_are_refused_for_csv(tmp_path):
    m = motion(2)
    other = Motion(m.pose, Expression(torch.zeros(2, 1434), "mesh-offset", []), m.shape, m.found, m.fps, 0)
    with pytest.raises(InputError, match="ARKit"):
        save_tracks(other, tmp_path / "t.csv")


def test_coefficient_scales():
    m = motion(5)
    jaw = ICT_NAMES.index("jawOpen")
    out = transfer(m, m, TransferConfig(mode="absolute", coefficient_scales="jawOpen=0.5"))
    torch.testing.assert_close(out.expression.coeffs[:, jaw], m.expression.coeffs[:, jaw] * 0.5)
    other = out.expression.coeffs[:, torch.arange(53) != jaw]
    torch.testing.assert_close(other, m.expression.coeffs[:, torch.arange(53) != jaw])
    with pytest.raises(InputError, match="no coefficient 'jaw'"):
        transfer(m, m, TransferConfig(coefficient_scales="jaw=2"))


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with HTTP Range support (which the standard handler lacks); records the Range headers."""

    ranges: list = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        with open(f"{self.directory}{self.path}", "rb") as fh:
            data = fh.read()
        start = 0
        if "Range" in self.headers:
            self.ranges.append(self.headers["Range"])
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])


def upstream_archive(path, shared, tamper: str = ""):
    """A zip like the repository's (ICT-FaceKit-<commit>/FaceXModel/...) of the upstream files in ../shared;
    `tamper` names a file whose last byte is changed."""
    src = shared / "facemodels" / "ict-facekit"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for name in (*assets.UPSTREAM_SHA256, "LICENSE"):
            data = (src / name).read_bytes()
            zf.writestr(f"ICT-FaceKit-abc/FaceXModel/{name}", data[:-1] + b"!" if name == tamper else data)


@pytest.fixture()
def server(tmp_path, shared):
    """The upstream-like archive (ict.zip) and a tampered one (bad.zip) served on 127.0.0.1."""
    root = tmp_path / "www"
    root.mkdir()
    upstream_archive(root / "ict.zip", shared)
    upstream_archive(root / "bad.zip", shared, tamper="jawOpen.obj")
    RangeHandler.ranges = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(RangeHandler, directory=str(root)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/ict.zip", root / "ict.zip"
    httpd.shutdown()


def test_download_resumes_checks_and_installs(server, tmp_path, monkeypatch):
    import hashlib

    url, archive = server
    monkeypatch.setenv("REENACT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("REENACT_FACE_MODEL", raising=False)
    data = archive.read_bytes()
    part = tmp_path / "cache" / "downloads" / "ict-facekit.zip.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(data[: len(data) // 3])
    target = assets.install_ict(url, hashlib.sha256(data).hexdigest(), progress=False)
    assert RangeHandler.ranges == [f"bytes={len(data) // 3}-"]
    with zipfile.ZipFile(archive) as zf:
        assert (target / "jawOpen.obj").read_bytes() == zf.read("ICT-FaceKit-abc/FaceXModel/jawOpen.obj")
    assert find_model() == target and not part.exists()


def test_upstream_files_are_pinned(server, tmp_path, monkeypatch, shared):
    url, _ = server
    monkeypatch.setenv("REENACT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("REENACT_FACE_MODEL", raising=False)
    with pytest.raises(MissingAssetError, match="checksum mismatch for jawOpen.obj"):
        assets.install_ict(url.replace("ict.zip", "bad.zip"), progress=False)
    assert find_model() is None and not any((tmp_path / "cache" / "downloads").iterdir())
    assets.check_upstream(shared / "facemodels" / "ict-facekit", "shared")  # the pins are the real upstream files
    (tmp_path / "www" / "bad.zip").write_bytes(b"<html>not found</html>")
    with pytest.raises(MissingAssetError, match="not a zip archive"):
        assets.install_ict(url.replace("ict.zip", "bad.zip"), progress=False)


def test_download_checksum_mismatch(server, tmp_path):
    url, _ = server
    with pytest.raises(MissingAssetError, match="checksum mismatch"):
        assets.download(url, tmp_path / "x.zip", "0" * 64, progress=False)
    assert not (tmp_path / "x.zip").exists() and not (tmp_path / "x.zip.part").exists()
