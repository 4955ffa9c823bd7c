"""Kill the app with SIGKILL at random moments and check that no label is ever lost.

Every kill hits a real ``faceapp`` child process: a scan (>= 20 times, some while
photos are being moved and renamed between runs), re-clustering, identity
operations (name, merge, move, reject, undo) and fine-tuning (training, saving
the new version, re-embedding every face). After each kill:

* ``PRAGMA integrity_check`` and ``foreign_key_check`` are clean;
* every stored photo has exactly the faces a clean reference scan found in the
  same content (by content hash and box), none twice, and no face stored before
  the kill has gone;
* every confirmed label, rejection and name made before the kill is still there
  (an identity operation either landed whole or not at all);
* the active model version has an embedding for every face.

Finally the scan resumes and must finish with the reference's faces.

    python bench/kill_test.py [--photos 240] [--scan-kills 20] [--cluster-kills 5]
                              [--op-kills 10] [--finetune-kills 4] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from kill_harness import run  # noqa: E402  the harness the tests run too


def print_table(result: dict) -> None:
    cols = [
        ("kills", "kills"),
        ("survived", "survived"),
        ("integrity", "integrity_failures"),
        ("duplicates", "duplicates"),
        ("faces lost", "lost_faces"),
        ("wrong faces", "wrong_faces"),
        ("labels lost", "labels_lost"),
        ("unembedded", "unembedded"),
        ("not atomic", "not_atomic"),
        ("had finished", "finished_before_kill"),
    ]
    head = f"{'phase':<10}" + "".join(f"{c:>13}" for c, _ in cols)
    print(head)
    print("-" * len(head))
    for phase, t in [*result["phases"].items(), ("total", result["total"])]:
        print(f"{phase:<10}" + "".join(f"{t[k]:>13}" for _, k in cols))
    r = result["resume"]
    print(
        f"resume after the scan kills: finished, {r['photos_missing_after_resume']} photos"
        f" missing, check ok: {r['check_ok']}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=240)
    parser.add_argument("--scan-kills", type=int, default=20)
    parser.add_argument("--scan-max-delay", type=float, default=15.0)
    parser.add_argument("--cluster-kills", type=int, default=5)
    parser.add_argument("--op-kills", type=int, default=10)
    parser.add_argument("--finetune-kills", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    result = run(args)
    print_table(result)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "kill_test.json").write_text(json.dumps(result, indent=2))
    t = result["total"]
    return 0 if t["survived"] == t["kills"] and result["resume"]["check_ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
