"""`python -m reenact.batch`: a small manifest on this machine and on a local Ray cluster, resumed and re-run."""
import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from reenact.batch import main, paired_rows, read_manifest


@pytest.fixture()
def manifest(media, talking_clip, tmp_path):
    """Three rows of one 48-frame clip: s42, s12 in absolute mode, and a dog (refused)."""
    path = tmp_path / "rows.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["source", "driving", "options"])
        writer.writerow([media / "s42.jpg", talking_clip, ""])
        writer.writerow([media / "s12.jpg", talking_clip, "--mode absolute"])
        writer.writerow([media / "s25.jpg", talking_clip, ""])
    return path


def _results(out):
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def _check(out, rows):
    by = {r["output"]: r for r in _results(out)}
    assert [by[r.output]["status"] for r in rows] == ["done", "done", "refused"]
    assert "no human face" in by[rows[2].output]["reason"]
    for row in rows[:2]:
        assert by[row.output]["frames"] == 48 and by[row.output]["fps"] > 0 and (out / row.output).stat().st_size
    table = list(csv.DictReader(open(out / "results.csv")))
    assert [t["status"] for t in table] == ["done", "done", "refused"]
    assert len(list((out / ".reenact-work").glob("driving-tracks-*.npz"))) == 1  # the clip tracked once


def test_local_batch_runs_resumes_and_skips(manifest, tmp_path):
    rows = read_manifest(manifest)
    assert rows[1].output != rows[0].output and rows[1].options == ("--mode", "absolute")
    out = tmp_path / "out"
    assert main(["--manifest", str(manifest), "--out", str(out), "--workers", "2", "--evaluate"]) == 0
    _check(out, rows)
    evaluated = [r["evaluation"] for r in _results(out) if r["status"] == "done"]
    assert all(0 <= e["pose_error_ratio"][3] < 2 and e["identity_to_source"] < 0.6 for e in evaluated)
    stamps = {r.output: (out / r.output).stat().st_mtime_ns for r in rows[:2]}
    lines = len(_results(out))
    assert main(["--manifest", str(manifest), "--out", str(out)]) == 0  # everything finished: nothing runs
    assert len(_results(out)) == lines and {r: (out / r).stat().st_mtime_ns for r in stamps} == stamps


def test_a_killed_batch_resumes(manifest, tmp_path):
    """Kill the batch (and its child) once a row is recorded: no half-written output is left, and a re-run keeps
    the finished row and runs the others."""
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "reenact.batch", "--manifest", str(manifest), "--out", str(out),
                             "--workers", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    results = out / "results.jsonl"
    for _ in range(600):
        if results.exists() and results.read_text().strip():
            break
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    first = _results(out)
    assert len(first) >= 1
    assert not list(out.glob(".*.part.mp4")) and not list(out.glob("*.part*"))
    kept = {r["output"]: (out / r["output"]).stat().st_mtime_ns for r in first if r["status"] == "done"}
    assert main(["--manifest", str(manifest), "--out", str(out)]) == 0
    _check(out, read_manifest(manifest))
    assert {r: (out / r).stat().st_mtime_ns for r in kept} == kept


def test_ray_batch_on_a_local_cluster(manifest, tmp_path):
    ray = pytest.importorskip("ray", reason="the batch's Ray extra: pip install .[ray]")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        out = tmp_path / "out"
        assert main(["--manifest", str(manifest), "--out", str(out), "--ray"]) == 0
        _check(out, read_manifest(manifest))
        lines = len(_results(out))
        assert main(["--manifest", str(manifest), "--out", str(out), "--ray"]) == 0
        assert len(_results(out)) == lines
    finally:
        ray.shutdown()


def test_pairs_from_folders(media, talking_clip, expressive_clip, tmp_path):
    """--pairs all: every source with every video; zip: side by side; self: each clip's own first frame with
    --ref-frame 0."""
    sources, clips = tmp_path / "sources", tmp_path / "clips"
    sources.mkdir()
    clips.mkdir()
    for name in ("s42.jpg", "s12.jpg"):
        (sources / name).write_bytes((media / name).read_bytes())
    for clip in (talking_clip, expressive_clip):
        (clips / clip.name).write_bytes(clip.read_bytes())
    assert len(paired_rows(sources, clips, "all", tmp_path)) == 4
    assert len(paired_rows(sources, clips, "zip", tmp_path)) == 2
    own = paired_rows(None, clips, "self", tmp_path)
    assert [r.options for r in own] == [("--ref-frame", "0")] * 2
    assert all(os.path.exists(r.source) and r.source.endswith(".png") for r in own)
