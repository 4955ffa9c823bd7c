"""How sure are the review queue's cluster questions ("6 faces of Cluster 9 look like
Kofi Annan: merge?") when the answer is yes, and when it is no? Sets
review.CLUSTER_FLOOR, under which a question is not asked.

On bench/album_effort.py's album (its cached scan; run that first), grouped as the app
groups it, a user who knows the truth names people in three ways, then every cluster
question is scored against the truth (yes: most of the cluster is that person):

* ``named1`` / ``named2``: each group's person is named from 1 or 2 of its faces
  elsewhere (as from Unknown), the group itself is left: its question should be yes;
* ``half``: every other group is named; the questions about the rest are about
  other people: no.

    python bench/review_questions.py
Prints the confidences by answer and writes bench/results/review_questions.json.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import album_effort  # noqa: E402

from faceapp.engine import album, naming, review  # noqa: E402
from faceapp.engine.cluster import recluster  # noqa: E402
from faceapp.engine.grouping import grouping_params  # noqa: E402
from faceapp.engine.library import Library  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def scenario(kind: str, lib_path: Path, photos: list[dict]) -> list[dict]:
    work = RESULTS / "review_questions_work.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(str(work) + suffix).unlink(missing_ok=True)
    shutil.copy(lib_path, work)
    lib = Library(work)
    user = album_effort.User(lib, photos, lambda: None)
    recluster(lib, grouping_params(0))
    groups = [g for g in album.groups(lib) if g.kind == "cluster"]
    for k, g in enumerate(groups):
        faces = album.group_faces(lib, "cluster", g.id)
        name, n = Counter(user.truth.get(f) for f in faces).most_common(1)[0]
        if name is None or n < 2:
            continue
        if kind == "half" and k % 2 == 0:
            pid = user.person_id(name)
            if pid is None:
                naming.name_cluster(lib, g.id, name)
            else:
                naming.name_cluster(lib, g.id, person_id=pid)
        elif kind.startswith("named"):
            few = int(kind[-1])
            mine = [f for f in faces if user.truth.get(f) == name]
            if len(mine) >= few + 2:
                naming.move_to_name(lib, mine[:few], name, create=True)
    out = []
    for q in review.cluster_reviews(lib):
        faces = album.group_faces(lib, "cluster", q.cluster_id)
        right = sum(user.truth.get(f) == q.person_name for f in faces)
        out.append({"scenario": kind, "confidence": q.confidence, "yes": right > len(faces) / 2})
    lib.close()
    return out


def main() -> None:
    lib_path, photos, _ = album_effort.scan_album(False, album_effort.SMALL_MIN)
    floor, review.CLUSTER_FLOOR = review.CLUSTER_FLOOR, 0.0  # every question, to score them
    rows = [q for kind in ("named1", "named2", "half") for q in scenario(kind, lib_path, photos)]
    print(f"{'answer':<8}{'questions':>10}{'lowest':>9}{'highest':>9}{'under floor':>13}")
    summary = {}
    for answer in (True, False):
        conf = sorted(q["confidence"] for q in rows if q["yes"] == answer)
        under = sum(c < floor for c in conf)
        word = "yes" if answer else "no"
        summary[word] = {"questions": len(conf), "confidences": conf, "under_floor": under}
        if conf:
            print(f"{word:<8}{len(conf):>10}{conf[0]:>9.4f}{conf[-1]:>9.4f}{under:>13}")
    print("no:", " ".join(f"{c:.3f}" for c in summary["no"]["confidences"]))
    print(f"floor (review.CLUSTER_FLOOR): {floor}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = {"floor": floor, "summary": summary, "questions": rows}
    (RESULTS / "review_questions.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
