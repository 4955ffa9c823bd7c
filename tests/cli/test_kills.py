"""A handful of SIGKILLs during scan, clustering and identity operations (tests/kill_harness.py;
bench/kill_test.py runs 20+ scan kills and fine-tuning kills)."""

from __future__ import annotations

import argparse

import kill_harness
import pytest


@pytest.mark.slow
def test_killed_commands_never_corrupt_duplicate_or_lose_labels(lfw_root, capsys):
    args = argparse.Namespace(
        photos=24,
        scan_kills=4,
        scan_max_delay=12.0,
        cluster_kills=1,
        op_kills=3,
        finetune_kills=0,
        seed=1,
    )
    result = kill_harness.run(args)
    total = result["total"]
    log = capsys.readouterr().out
    assert total["kills"] >= 6, log
    assert total["integrity_failures"] == 0, log
    assert total["duplicates"] == 0 and total["lost_faces"] == 0 and total["wrong_faces"] == 0
    assert total["labels_lost"] == 0 and total["not_atomic"] == 0, log
    assert total["survived"] == total["kills"], log
    assert result["resume"]["check_ok"] and result["resume"]["photos_missing_after_resume"] == 0
