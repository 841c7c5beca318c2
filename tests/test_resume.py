"""An interrupted run resumes from its last finished segment; corrupt cache entries are recomputed."""
import signal
import subprocess
import sys
import time

import numpy as np

from reenact.run import main
from third_party_wrappers.video import open_video


def frames(path):
    with open_video(path) as reader:
        return reader.read(list(range(reader.info.n_frames)))


def finished_segments(work):
    """Segments written whole (an unfinished one is a hidden `.NAME.part.mp4` beside them)."""
    return sorted(p for p in work.glob("segments-*/*.mp4") if not p.name.startswith("."))


def test_killed_run_resumes_to_the_same_output(media, talking_clip, tmp_path):
    common = [str(media / "s42.jpg"), str(talking_clip), "-q", "--output.segment", "16"]
    assert main([*common, "-o", str(tmp_path / "a.mp4"), "--work-dir", str(tmp_path / "wa")]) == 0

    work, out = tmp_path / "wb", tmp_path / "b.mp4"
    proc = subprocess.Popen([sys.executable, "-m", "reenact.run", *common, "-o", str(out), "--work-dir", str(work)])
    deadline = time.time() + 240
    while not finished_segments(work) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = finished_segments(work)
    assert first and not out.exists()  # killed after a segment, before the output
    stamp = first[0].stat().st_mtime_ns

    assert main([*common, "-o", str(out), "--work-dir", str(work)]) == 0
    assert first[0].stat().st_mtime_ns == stamp  # the finished segment was reused
    assert len(finished_segments(work)) == 3
    np.testing.assert_array_equal(frames(out), frames(tmp_path / "a.mp4"))


def test_corrupt_cache_entry_is_recomputed(media, talking_clip, tmp_path, caplog):
    args = [str(media / "s42.jpg"), str(talking_clip), "-q", "-o", str(tmp_path / "o.mp4")]
    assert main(args) == 0
    entry = next((tmp_path / ".reenact-work").glob("driving-tracks-*.npz"))
    good = entry.read_bytes()
    entry.write_bytes(good[: len(good) // 2])
    assert main(args) == 0
    assert "corrupt cache entry" in caplog.text
    from reenact.structures import Tracks

    Tracks.load(entry)  # rewritten whole
