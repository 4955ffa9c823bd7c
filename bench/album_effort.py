"""How much work is it to name everyone in an album? A simulated user who knows the
truth labels a whole album built from LFW through the engine operations the GUI offers.

The album: 40 people with 2-12 photos each and 60 people seen once (LFW deep-funneled
portraits), composited 1-10 to a photo on plain canvases with an EXIF date, 15% of
them small (pasted at 22-60 px, --small-min: faces of ~15-45 px). It is scanned once by the app's
own pipeline (MTCNN + FaceNet, the offline weights) and cached under
bench/results/album_effort/, so reruns only re-label (a copy of the cached library).

The user, in the order the app offers the work:
1. the grouping runs (automatic);
2. each group whose faces are mostly one person is named (1 action) - or merged into
   that person when they are named already; faces the app flags as not fitting stay
   out by themselves; faces of someone else that still look like they fit are
   removed first (1 action for the selection);
3. faces the detector missed are drawn and named (1 action each: draw the box,
   type the name, as `add-face ... --to NAME --create`);
4. review (opening it measures small faces at their own resolution, as the GUI's
   Review does: engine/small_match.py): wrong "likely" suggestions are answered No
   (1 action each), then "Accept all likely" (1 action), repeated while it still
   finds likely faces;
5. what is left, person by person: the faces are selected and named, a new person
   or an existing one (1 action per person).
Actions are attributed to the person they concern; the one-click steps that cover
many people (accept all) count for the people seen more than once.

    python bench/album_effort.py            # builds + scans the album once, then labels
    python bench/album_effort.py --rebuild  # build and scan again
Prints a table and writes bench/results/album_effort.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from faceapp.engine import (  # noqa: E402
    add_face,
    album,
    naming,
    people,
    pipeline,
    review,
    small_match,
)
from faceapp.engine.cluster import recluster  # noqa: E402
from faceapp.engine.grouping import LEVELS, grouping_params  # noqa: E402
from faceapp.engine.library import Library  # noqa: E402

LFW = Path(os.environ.get("FACEAPP_LFW", ROOT.parent / "shared" / "data" / "lfw"))
RESULTS = ROOT / "bench" / "results"
SMALL_MIN = 22  # smallest pasted size (px): faces under ~20 px escape the detector
RECURRING, SINGLES = 40, 60
SMALL_SHARE = 0.15
# The central part of a 250 px deep-funneled LFW image that is pasted, and where the
# face lies in it (fractions of the pasted square): what a user would draw.
PASTE_SRC = (50, 45, 200, 195)
FACE_IN_PASTE = (0.14, 0.1, 0.86, 0.92)


def choose_people(rng: np.random.Generator) -> list[tuple[str, list[str]]]:
    """(name, image paths) of the recurring people, then the people seen once."""
    folder = LFW / "lfw-deepfunneled"
    everyone = sorted(p.name for p in folder.iterdir() if p.is_dir())
    counts = {n: len(list((folder / n).glob("*.jpg"))) for n in everyone}
    chosen: list[str] = []
    out = []
    for _ in range(RECURRING):  # how many photos first, then someone with that many
        k = int(rng.integers(2, 13))
        fits = [n for n in everyone if counts[n] >= k and n not in chosen]
        name = str(rng.choice(fits))
        chosen.append(name)
        imgs = sorted((folder / name).glob("*.jpg"))
        pick = rng.choice(len(imgs), k, replace=False)
        out.append((name, [str(imgs[i]) for i in sorted(pick)]))
    rest = [n for n in everyone if n not in set(chosen)]
    for name in rng.choice(rest, SINGLES, replace=False).tolist():
        out.append((name, [str(sorted((folder / name).glob("*.jpg"))[0])]))
    return out


def cache_dir(small_min: int) -> Path:
    return RESULTS / ("album_effort" if small_min == SMALL_MIN else f"album_effort_s{small_min}")


def build(folder: Path, small_min: int, seed: int = 0) -> list[dict]:
    """Write the album's photos; returns the truth per photo (pasted faces and boxes)."""
    rng = np.random.default_rng(seed)
    instances = [(name, img) for name, imgs in choose_people(rng) for img in imgs]
    order = rng.permutation(len(instances))
    pool = [instances[i] for i in order]
    photos: list[list[tuple[str, str]]] = []
    while pool:
        n = int(rng.choice([1, 1, 2, 2, 3, 4, 5, 6, 8, 10]))
        group: list[tuple[str, str]] = []
        for inst in list(pool):
            if len(group) == n:
                break
            if all(inst[0] != g[0] for g in group):  # nobody twice in one photo
                group.append(inst)
                pool.remove(inst)
        photos.append(group)
    folder.mkdir(parents=True, exist_ok=True)
    truth = []
    for k, group in enumerate(photos):
        sizes = [
            int(rng.integers(small_min, 61))
            if rng.random() < SMALL_SHARE
            else int(rng.integers(110, 221))
            for _ in group
        ]
        cols = min(len(group), 4)
        rows = -(-len(group) // cols)
        cell = max(sizes) + 40
        w, h = cols * cell + 40, rows * cell + 40
        shade = tuple(int(v) for v in rng.integers(60, 200, 3))
        canvas = Image.new("RGB", (w, h), shade)
        faces = []
        for i, ((name, img), s) in enumerate(zip(group, sizes, strict=True)):
            r, c = divmod(i, cols)
            x = 20 + c * cell + int(rng.integers(0, cell - s + 1))
            y = 20 + r * cell + int(rng.integers(0, cell - s + 1))
            with Image.open(img) as src:
                canvas.paste(src.convert("RGB").crop(PASTE_SRC).resize((s, s)), (x, y))
            fx1, fy1, fx2, fy2 = FACE_IN_PASTE
            faces.append(
                {
                    "name": name,
                    "paste": [x, y, x + s, y + s],
                    "face": [x + fx1 * s, y + fy1 * s, x + fx2 * s, y + fy2 * s],
                }
            )
        exif = Image.Exif()
        year = 2000 + k % 20
        exif.get_ifd(0x8769)[0x9003] = f"{year}:{1 + k % 12:02d}:15 12:00:00"
        rel = f"photo_{k:03d}.jpg"
        canvas.save(folder / rel, quality=92, exif=exif)
        truth.append({"path": rel, "faces": faces})
    return truth


def scan_album(rebuild: bool, small_min: int) -> tuple[Path, list[dict], float]:
    """The cached scanned album (built and scanned when missing): library, truth, seconds."""
    cache = cache_dir(small_min)
    lib_path, truth_path = cache / "library.sqlite", cache / "truth.json"
    if not rebuild and lib_path.exists() and truth_path.exists():
        meta = json.loads(truth_path.read_text())
        return lib_path, meta["photos"], meta["scan_seconds"]
    shutil.rmtree(cache, ignore_errors=True)
    photos = build(cache / "photos", small_min)
    lib = Library(lib_path, root=cache / "photos")
    analyzer = pipeline.analyzer_for_library(lib, device="cpu")
    t = time.perf_counter()
    report = pipeline.scan(lib, cache / "photos", analyzer)
    seconds = time.perf_counter() - t
    lib.close()
    truth_path.write_text(json.dumps({"photos": photos, "scan_seconds": seconds}))
    print(f"scanned {report.photos} photos, {report.faces} faces in {seconds:.0f} s")
    return lib_path, photos, seconds


class User:
    """The simulated user: knows who everyone is, counts every action."""

    def __init__(self, lib: Library, photos: list[dict], analyzer_factory) -> None:
        self.lib = lib
        self.photos = photos
        self.analyzer_factory = analyzer_factory
        self.actions: Counter[str] = Counter()  # kind -> count
        self.by_person: Counter[str] = Counter()  # person -> actions about them
        self.shared = 0  # actions covering many people at once
        self.truth: dict[int, str | None] = {}
        self.undetected: list[tuple[str, dict]] = []
        self.outlier_stats: Counter[str] = Counter()
        self.small_stats: Counter[str] = Counter()  # "likely" suggestions of small faces
        self.count = Counter(f["name"] for p in photos for f in p["faces"])
        self._match_faces()

    def _match_faces(self) -> None:
        """Detected face -> the pasted face its centre lies in (None: not a pasted face)."""
        ids = {p["path"]: [] for p in self.photos}
        for f in self.lib.faces():
            ids[f.photo_path].append(f)
        for p in self.photos:
            used = set()
            for f in ids[p["path"]]:
                cx, cy = (f.box[0] + f.box[2]) / 2, (f.box[1] + f.box[3]) / 2
                name = None
                for k, t in enumerate(p["faces"]):
                    x1, y1, x2, y2 = t["paste"]
                    if k not in used and x1 <= cx <= x2 and y1 <= cy <= y2:
                        name = t["name"]
                        used.add(k)
                        break
                self.truth[f.id] = name
            self.undetected += [(p["path"], t) for k, t in enumerate(p["faces"]) if k not in used]

    def act(self, kind: str, person: str | None) -> None:
        self.actions[kind] += 1
        if person is None:
            self.shared += 1
        else:
            self.by_person[person] += 1

    def person_id(self, name: str) -> int | None:
        return people._person_by_name(self.lib.conn, name)

    # -- the steps ---------------------------------------------------------------------

    def name_groups(self) -> None:
        for g in [g for g in album.groups(self.lib) if g.kind == "cluster"]:
            faces = album.group_faces(self.lib, "cluster", g.id)
            outliers = set(naming.cluster_outliers(self.lib, g.id))
            fit = [f for f in faces if f not in outliers]
            names = Counter(self.truth.get(f) for f in fit)
            name, n = names.most_common(1)[0]
            if name is None or n < 2:
                continue  # not a person the album holds (background faces): left alone
            intruders = {f for f in faces if self.truth.get(f) != name}
            self.outlier_stats["faces_in_named_groups"] += len(faces)
            self.outlier_stats["intruders"] += len(intruders)
            self.outlier_stats["flagged"] += len(outliers)
            self.outlier_stats["flagged_intruders"] += len(outliers & intruders)
            wrong = [f for f in fit if self.truth.get(f) != name]
            if wrong:
                people.remove_from_cluster(self.lib, wrong, g.id)
                self.act("remove from group", name)
            pid = self.person_id(name)
            if pid is None:
                naming.name_cluster(self.lib, g.id, name, leave_out=outliers)
            else:
                naming.name_cluster(self.lib, g.id, person_id=pid, leave_out=outliers)
            self.act("name group", name)

    def review(self) -> None:
        embedder = self.analyzer_factory().embedder
        for _ in range(5):
            # what opening Review does: small faces measured at their own resolution
            small_match.update(self.lib, embedder.embed, self.lib.active_model().id)
            likely = [s for s in review.review(self.lib) if s.label == "likely"]
            if not likely:
                return
            small = self.small_faces()
            for s in likely:
                if s.face_id in small:
                    right = self.truth.get(s.face_id) == s.person_name
                    self.small_stats["likely right" if right else "likely wrong"] += 1
            for s in likely:
                if self.truth.get(s.face_id) != s.person_name:
                    people.reject_suggestion(self.lib, s.face_id, s.person_id)
                    self.act("no to a suggestion", self.truth.get(s.face_id))
            if any(self.truth.get(s.face_id) == s.person_name for s in likely):
                review.accept_likely(self.lib)
                self.act("accept all likely", None)

    def small_faces(self) -> set[int]:
        rows = self.lib.conn.execute(
            "SELECT id FROM faces WHERE (x2 - x1 + y2 - y1) / 2 < ?", (small_match.SMALL_PX,)
        )
        return {r[0] for r in rows}

    def draw_missed(self) -> list[str]:
        """Add the faces the detector missed; returns those that could not be added."""
        failed = []
        analyzer = self.analyzer_factory() if self.undetected else None
        for path, t in self.undetected:
            try:  # one command: add-face PHOTO --box ... --to NAME --create
                fid = add_face.add_face(self.lib, analyzer, path, t["face"])
                naming.move_to_name(self.lib, [fid], t["name"], create=True)
            except Exception as exc:  # counted as impossible to label
                failed.append(f"{path} {t['name']}: {exc}")
                continue
            self.truth[fid] = t["name"]
            self.act("draw and name a missed face", t["name"])
        return failed

    def name_the_rest(self) -> None:
        todo: dict[str, list[int]] = defaultdict(list)
        rows = self.lib.conn.execute("SELECT id, person_id FROM faces").fetchall()
        names = dict(self.lib.conn.execute("SELECT id, name FROM people").fetchall())
        for fid, pid in rows:
            name = self.truth.get(fid)
            if name is not None and names.get(pid) != name:
                todo[name].append(fid)
        for name, faces in sorted(todo.items()):
            naming.move_to_name(self.lib, faces, name, create=True)
            self.act("name faces", name)

    def accuracy(self) -> tuple[int, int, int]:
        """(truth faces, labelled correctly, wrongly labelled)."""
        names = dict(self.lib.conn.execute("SELECT id, name FROM people").fetchall())
        rows = dict(self.lib.conn.execute("SELECT id, person_id FROM faces").fetchall())
        faces = [f for f, n in self.truth.items() if n is not None]
        right = sum(names.get(rows.get(f)) == self.truth[f] for f in faces)
        wrong = sum(
            rows.get(f) is not None and names.get(rows.get(f)) != self.truth[f] for f in faces
        )
        # confirmed faces that are no pasted face at all (background, false detections)
        wrong += sum(1 for f, n in self.truth.items() if n is None and rows.get(f) is not None)
        return len(faces), right, wrong


def run(seed_copy: Path, photos: list[dict], grouping: int = 0) -> dict:
    lib = Library(seed_copy)
    user = User(lib, photos, lambda: pipeline.analyzer_for_library(lib, device="cpu"))
    t = time.perf_counter()
    recluster(lib, grouping_params(grouping))
    user.name_groups()
    after_groups = sum(user.actions.values())
    failed = user.draw_missed()
    user.review()
    user.name_the_rest()
    total, right, wrong = user.accuracy()
    recurring = {n for n, c in user.count.items() if c >= 2}
    rec_faces = sum(c for n, c in user.count.items() if n in recurring)
    rec_actions = sum(v for n, v in user.by_person.items() if n in recurring) + user.shared
    # the least any user could do: one name per person, one box per face the detector missed
    rec_drawn = sum(1 for _, t in user.undetected if t["name"] in recurring)
    all_actions = sum(user.actions.values())
    cal = review.calibrate(lib)
    out = {
        "photos": len(photos),
        "faces_in_album": sum(user.count.values()),
        "people_recurring": len(recurring),
        "people_once": sum(1 for c in user.count.values() if c == 1),
        "faces_of_recurring_people": rec_faces,
        "detected_album_faces": sum(1 for n in user.truth.values() if n is not None)
        - (len(user.undetected) - len(failed)),
        "missed_by_detector": len(user.undetected),
        "other_detections": sum(1 for n in user.truth.values() if n is None),
        "actions": dict(user.actions),
        "actions_total": all_actions,
        "actions_after_naming_groups": after_groups,
        "actions_per_face_recurring": round(rec_actions / rec_faces, 4),
        "actions_per_face_overall": round(all_actions / sum(user.count.values()), 4),
        "floor_per_face_recurring": round((len(recurring) + rec_drawn) / rec_faces, 4),
        "outliers": dict(user.outlier_stats),
        "small_faces": len(user.small_faces() & {f for f, n in user.truth.items() if n}),
        "small_likely": dict(user.small_stats),
        "impossible_to_label": failed,
        "labelled_right": right,
        "labelled_wrong": wrong,
        "final_accuracy": round(right / total, 4),
        "calibration": {"source": cal.source, "mid": round(cal.mid, 4), "scale": cal.scale},
        "label_seconds": round(time.perf_counter() - t, 1),
    }
    lib.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rebuild", action="store_true", help="build and scan the album again")
    ap.add_argument(
        "--small-min", type=int, default=SMALL_MIN, help="smallest pasted face size (px)"
    )
    ap.add_argument(
        "--grouping", type=int, default=0, choices=sorted(LEVELS), help="looser -2 ... 2 stricter"
    )
    args = ap.parse_args()
    if not (LFW / "lfw-deepfunneled").is_dir():
        sys.exit(f"LFW not found at {LFW}")
    lib_path, photos, scan_s = scan_album(args.rebuild, args.small_min)
    work = RESULTS / "album_effort_work.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(str(work) + suffix).unlink(missing_ok=True)
    src = Library(lib_path)
    src.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    src.close()
    shutil.copy(lib_path, work)
    result = run(work, photos, args.grouping)
    result["grouping"] = args.grouping
    result["scan_seconds"] = round(scan_s, 1)
    print(
        f"album: {result['photos']} photos, {result['faces_in_album']} faces of "
        f"{result['people_recurring']} recurring people + {result['people_once']} seen once"
    )
    print(
        f"detector missed {result['missed_by_detector']}, other detections "
        f"{result['other_detections']}; scan {result['scan_seconds']} s (cached)"
    )
    print(f"\n{'action':<28}{'count':>6}")
    for kind, n in sorted(result["actions"].items()):
        print(f"{kind:<28}{n:>6}")
    print(f"{'total':<28}{result['actions_total']:>6}")
    print(
        f"\nactions per face, recurring people: {result['actions_per_face_recurring']:.3f}"
        "  (goal <= 0.17)"
    )
    print(
        f"  (floor: one name per person + one box per missed face: "
        f"{result['floor_per_face_recurring']:.3f})"
    )
    print(f"actions per face, overall:          {result['actions_per_face_overall']:.3f}")
    o = result["outliers"]
    print(
        f"groups named: {o.get('faces_in_named_groups', 0)} faces, "
        f"{o.get('intruders', 0)} of someone else; flagged as not fitting: "
        f"{o.get('flagged', 0)} ({o.get('flagged_intruders', 0)} of them someone else)"
    )
    sl = result["small_likely"]
    print(
        f"faces under {small_match.SMALL_PX:.0f} px: {result['small_faces']}; accepted as likely "
        f"(measured at their resolution): {sl.get('likely right', 0)} right, "
        f"{sl.get('likely wrong', 0)} wrong"
    )
    print(f"faces impossible to label:          {len(result['impossible_to_label'])}")
    print(
        f"final label accuracy:               {result['final_accuracy']:.4f}"
        f"  ({result['labelled_wrong']} wrong)"
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    result["small_min"] = args.small_min
    name = "album_effort" if args.small_min == SMALL_MIN else f"album_effort_s{args.small_min}"
    name += f"_g{args.grouping}" if args.grouping else ""
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
