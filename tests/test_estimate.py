"""The size estimate behind a backup's progress (`backup/estimate.py`): `du` measures the content
trees beside the backup, on CPU time nothing else wants."""

from __future__ import annotations

import os
import time
from pathlib import Path

from hostbackup.backup.estimate import Estimate

DEADLINE = 30.0


def test_du_measures_the_trees_on_idle_cpu_time_only(tmp_path: Path) -> None:
    site, mail = tmp_path / "site", tmp_path / "mail"
    (site / "images").mkdir(parents=True)
    (site / "images" / "logo.png").write_bytes(bytes(100_000))
    (site / "index.php").write_bytes(b"<?php echo 1;" * 1000)
    mail.mkdir()
    (mail / "1.eml").write_bytes(b"Subject: hi\n\nhello\n" * 500)
    content = 100_000 + 13_000 + 9_500
    estimate = Estimate(None, [site, mail])
    try:
        assert estimate._du is not None
        # SCHED_IDLE: a backup keeps the cores busy, and du must not take its time from it
        assert os.sched_getscheduler(estimate._du.pid) == os.SCHED_IDLE
        deadline = time.monotonic() + DEADLINE
        while (value := estimate.poll()) is None:
            assert time.monotonic() < deadline, "du did not finish"
            time.sleep(0.01)
        directories = 3 * os.stat(site).st_size  # du counts each directory's own size too
        assert content <= value <= content + directories
    finally:
        estimate.close()


def test_a_known_size_is_used_without_measuring() -> None:
    estimate = Estimate(123_456, [Path("/nonexistent")])
    assert estimate._du is None
    assert estimate.poll() == 123_456
