"""Clustering: HDBSCAN paths, constraints, stable ids, re-clustering a library, metrics."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faceapp.engine import (
    album,
    birthdays,
    cluster,
    cluster_steps,
    clustering,
    group_centres,
    naming,
    neighbours,
    oplog,
    people,
    person_distances,
    review,
)
from faceapp.engine.cluster import recluster
from faceapp.engine.cluster_metrics import agreement, cluster_scores
from faceapp.engine.cluster_steps import match_cluster_ids
from faceapp.engine.clustering import ClusterParams, cluster_vectors
from faceapp.engine.face_state import FaceState
from faceapp.engine.library import Library, LibraryError
from faceapp.engine.library_photos import NewFace
from faceapp.engine.person_distances import PersonDistances, nearest_people

DIM = 512


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def blobs(
    sizes: list[int], seed: int = 0, spread: float = 0.45, dim: int = DIM
) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors around random identity centres; squared L2 within an identity
    ~2 * spread^2 (0.4 at the default), between identities ~1.8-2."""
    rng = np.random.default_rng(seed)
    centres = _unit(rng.normal(size=(len(sizes), dim)))
    labels = np.repeat(np.arange(len(sizes)), sizes)
    x = centres[labels] + rng.normal(size=(len(labels), dim)) * spread / np.sqrt(dim)
    return _unit(x), labels


# -- numeric core ----------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["exact", "knn"])
def test_cluster_vectors_recovers_identities(algorithm):
    x, truth = blobs([40, 30, 20, 12, 8, 6, 5, 1, 1, 1], seed=1)
    res = cluster_vectors(x, params=ClusterParams(algorithm=algorithm))
    s = cluster_scores(truth, res.labels)
    assert s.bcubed_f > 0.97, s
    assert s.clusters == 7
    assert res.stats["algorithm"] == algorithm


def test_knn_path_agrees_with_exact_hdbscan():
    x, _ = blobs(list(np.random.default_rng(3).integers(3, 40, 60)), seed=3, spread=0.6)
    exact = cluster_vectors(x, params=ClusterParams(algorithm="exact", attach_ratio=0)).labels
    knn = cluster_vectors(x, params=ClusterParams(algorithm="knn", attach_ratio=0)).labels
    assert agreement(exact, knn) > 0.97


def test_approximate_knn_finds_the_exact_neighbours():
    x, _ = blobs(list(np.random.default_rng(4).integers(2, 60, 120)), seed=4, spread=0.7)
    y = clustering.pca_reduce(x, 64)
    exact, exact_d = neighbours.knn(y, 10, brute_limit=len(y))
    approx, dist = neighbours.knn(y, 10, brute_limit=0, cell_size=64)
    brute = np.sqrt(((y[:, None, :] - y[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(brute, np.inf)
    assert np.allclose(np.sort(brute, axis=1)[:, :10], exact_d, atol=1e-3)
    assert not (exact == np.arange(len(y))[:, None]).any()  # never itself
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact, approx, strict=True)])
    assert recall > 0.9, recall
    assert np.all(np.diff(dist, axis=1) >= 0)


def test_small_inputs():
    assert cluster_vectors(np.zeros((0, DIM), np.float32)).n_clusters == 0
    x, _ = blobs([3], seed=0)
    assert (cluster_vectors(x).labels == -1).all()


def test_duplicate_vectors_cluster_together():
    x, _ = blobs([10, 10], seed=5)
    x = np.concatenate([x, x[:10]])  # the same photos twice (copied files)
    for algorithm in ("exact", "knn"):
        labels = cluster_vectors(x, params=ClusterParams(algorithm=algorithm)).labels
        assert len(set(labels[:10]) | set(labels[20:])) == 1 and labels[0] >= 0


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sizes=st.lists(st.integers(1, 25), min_size=1, max_size=8),
    photos=st.integers(1, 40),
    seed=st.integers(0, 10_000),
    algorithm=st.sampled_from(["exact", "knn"]),
)
def test_cannot_link_property(sizes, photos, seed, algorithm):
    """Whatever the data, no two faces of one photo end up in one cluster."""
    x, _ = blobs(sizes, seed=seed, spread=0.6)
    groups = np.random.default_rng(seed).integers(0, photos, len(x))
    labels = cluster_vectors(x, groups, ClusterParams(algorithm=algorithm)).labels
    valid = labels >= 0
    pairs = set()
    for g, lab in zip(groups[valid], labels[valid], strict=True):
        assert (g, lab) not in pairs
        pairs.add((g, lab))


def test_cannot_link_keeps_the_face_nearest_the_centroid():
    x, _ = blobs([20], seed=6)
    labels = np.zeros(20, np.int64)
    groups = np.arange(20)
    groups[5] = groups[6] = 100
    centre = _unit(x.mean(axis=0, keepdims=True))[0]
    d5, d6 = ((x[5] - centre) ** 2).sum(), ((x[6] - centre) ** 2).sum()
    assert cluster_steps.enforce_cannot_link(x, labels, groups) == 1
    assert labels[5 if d5 > d6 else 6] == -1 and labels[6 if d5 > d6 else 5] == 0


def test_attach_noise_and_merge():
    x, truth = blobs([10, 10], seed=7)
    labels = truth.copy()
    labels[[0, 15]] = -1
    groups = np.arange(20)
    assert cluster_steps.attach_noise(x, labels, groups, max_sq=0.6) == 2
    assert (labels == truth).all()
    # a noise face whose photo is already in the cluster stays out
    labels[0] = -1
    groups[0] = groups[1]
    assert cluster_steps.attach_noise(x, labels, groups, max_sq=0.6) == 0
    # two halves of one identity merge; two identities do not
    halves = np.where(np.arange(20) < 5, 0, np.where(truth == 0, 1, 2))
    assert cluster_steps.merge_close_clusters(x, halves, np.arange(20), max_sq=0.5) == 1
    assert len(set(halves[:10])) == 1 and len(set(halves)) == 2


def test_match_cluster_ids():
    old = np.array([5, 5, 5, 5, 7, 7, 7, 0, 0, 9])
    # cluster 5 splits 3/1, 7 stays, two unknown faces form a new cluster, 9 dissolves
    new = np.array([0, 0, 0, 1, 2, 2, 2, 3, 3, -1])
    ids, nxt = match_cluster_ids(new, old, next_id=10)
    assert ids.tolist() == [5, 5, 5, 10, 7, 7, 7, 11, 11, 0] and nxt == 12
    # two clusters merge: the bigger one's id survives
    new = np.array([0, 0, 0, 0, 0, 0, 0, -1, -1, -1])
    ids, _ = match_cluster_ids(new, old, next_id=10)
    assert set(ids[:7]) == {5}
    # same labels again: same ids
    same, _ = match_cluster_ids(np.array([0, 0, 1, 1]), np.array([3, 3, 4, 4]), next_id=9)
    assert same.tolist() == [3, 3, 4, 4]


def test_pca_reduce_shapes():
    x, _ = blobs([50, 50], seed=8)
    assert clustering.pca_reduce(x, 16).shape == (100, 16)
    assert clustering.pca_reduce(x, 0).shape == (100, DIM)
    assert clustering.pca_reduce(x[:10], 16).shape == (10, DIM)


# -- metrics ---------------------------------------------------------------------------


def test_cluster_scores_known_values():
    truth = np.array([0, 0, 0, 1, 1, 2])
    perfect = cluster_scores(truth, np.array([4, 4, 4, 2, 2, 9]))
    assert perfect.bcubed_f == pytest.approx(1) and perfect.ari == pytest.approx(1)
    assert perfect.pairwise_f1 == pytest.approx(1) and perfect.clusters == 3
    noise = cluster_scores(truth, np.full(6, -1))
    assert noise.bcubed_precision == 1 and noise.unknown_fraction == 1
    assert noise.bcubed_recall == pytest.approx((1 / 3 * 3 + 1 / 2 * 2 + 1) / 6)
    lumped = cluster_scores(truth, np.zeros(6, int))
    assert lumped.bcubed_recall == 1
    assert lumped.bcubed_precision == pytest.approx((3 / 6 * 3 + 2 / 6 * 2 + 1 / 6) / 6)
    assert lumped.pairwise_precision == pytest.approx(4 / 15)


def test_cluster_scores_match_sklearn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 30, 800)
    pred = np.where(rng.random(800) < 0.7, truth, rng.integers(-1, 40, 800))
    s = cluster_scores(truth, pred)
    singletons = pred.copy()
    singletons[pred < 0] = 1000 + np.arange((pred < 0).sum())
    assert s.ari == pytest.approx(metrics.adjusted_rand_score(truth, singletons))
    c = metrics.pair_confusion_matrix(truth, singletons)
    assert s.pairwise_precision == pytest.approx(c[1, 1] / (c[1, 1] + c[0, 1]))
    assert s.pairwise_recall == pytest.approx(c[1, 1] / (c[1, 1] + c[1, 0]))


# -- libraries -------------------------------------------------------------------------


def make_library(
    path, sizes: list[int], *, seed: int = 0, second_faces: int = 0, spread: float = 0.45
) -> tuple[Library, dict[int, int]]:
    """One face per photo, plus ``second_faces`` photos that also show another person.
    Returns the library and face id -> identity."""
    rng = np.random.default_rng(seed)
    x, truth = blobs(sizes, seed=seed, spread=spread)
    lib = Library(path)
    model = lib.add_model(
        name="t",
        source="t",
        origin="t",
        sha256="0",
        preprocess="fixed",
        threshold=1.1,
        threshold_source="t",
    )
    order = rng.permutation(len(x))
    extra = {
        int(i): int(j)
        for i, j in zip(order[:second_faces], order[::-1][:second_faces], strict=True)
    }
    ident: dict[int, int] = {}
    for i in range(len(x)):
        members = [i] + ([extra[i]] if i in extra and extra[i] != i else [])
        faces = [
            NewFace((10.0 + 100 * k, 0.0, 60.0 + 100 * k, 50.0), [[0, 0]] * 5, 0.99, b"j", x[m])
            for k, m in enumerate(members)
        ]
        photo = lib.store_photo(
            f"{i:05d}.jpg",
            size=1,
            mtime_ns=1,
            width=300,
            height=100,
            content_hash=str(i),
            faces=faces,
            model_id=model,
        )
        for m, row in zip(members, lib.faces_of_photo(photo), strict=True):
            ident[row.id] = int(truth[m])
    lib.set_active_model(model)
    return lib, ident


def labels_state(lib: Library) -> dict[int, tuple]:
    return {
        r[0]: (r[1], r[2])
        for r in lib.conn.execute("SELECT id, person_id, cluster_id FROM faces").fetchall()
    }


def check_invariants(lib: Library) -> None:
    """No two faces of one photo in one cluster or person; no suggestion breaks a rule."""
    for col in ("cluster_id", "person_id"):
        dup = lib.conn.execute(
            f"SELECT photo_id, {col}, COUNT(*) FROM faces WHERE {col} IS NOT NULL"
            f" GROUP BY photo_id, {col} HAVING COUNT(*) > 1"
        ).fetchall()
        assert not dup, (col, dup)
    assert not lib.conn.execute(
        "SELECT 1 FROM faces WHERE person_id IS NOT NULL AND cluster_id IS NOT NULL"
    ).fetchall()
    rejected = set(lib.conn.execute("SELECT face_id, person_id FROM rejections").fetchall())
    person_photos = set(
        lib.conn.execute(
            "SELECT photo_id, person_id FROM faces WHERE person_id IS NOT NULL"
        ).fetchall()
    )
    for s in review.review(lib):
        assert (s.face_id, s.person_id) not in rejected
        assert (lib.face(s.face_id).photo_id, s.person_id) not in person_photos
        assert lib.face(s.face_id).person_id is None


def test_recluster_is_stable_and_keeps_labels(tmp_path):
    lib, ident = make_library(tmp_path / "l.sqlite", [15, 12, 10, 8, 6, 2, 1], second_faces=6)
    s1 = recluster(lib)
    # 5 people with 6+ faces, and the one with 2 (faces that are each other's nearest)
    assert s1.clusters == 6 and s1.people == 0 and s1.faces == len(ident)
    first = labels_state(lib)
    s2 = recluster(lib)
    assert labels_state(lib) == first and s2.clusters == s1.clusters
    # name one cluster and confirm a stray face elsewhere; re-clustering keeps both
    groups = [g for g in album.groups(lib) if g.kind == "cluster"]
    pid = naming.name_cluster(lib, groups[0].id, "Anna").person_id
    anna_photos = {lib.face(f).photo_id for f in album.group_faces(lib, "person", pid)}
    stray = next(
        f
        for f in album.group_faces(lib, "cluster", groups[1].id)
        if lib.face(f).photo_id not in anna_photos
    )
    people.move_faces(lib, [stray], pid)
    confirmed = {f: p for f, (p, _) in labels_state(lib).items() if p}
    old_second = set(album.group_faces(lib, "cluster", groups[1].id)) - {stray}
    summary = recluster(lib)
    after = labels_state(lib)
    assert {f: p for f, (p, _) in after.items() if p} == confirmed
    assert lib.conn.execute("SELECT name FROM people").fetchall() == [("Anna",)]
    # the stray's old cluster now looks like Anna: its faces wait as suggestions
    suggested = {s.face_id for s in review.review(lib) if s.person_id == pid}
    assert summary.suggested > 0 and suggested & old_second
    # the other clusters keep their ids
    for g in groups[2:]:
        assert album.group_faces(lib, "cluster", g.id)
    check_invariants(lib)
    lib.close()


def test_rescan_new_faces_suggested_and_ids_kept(tmp_path):
    lib, _ = make_library(tmp_path / "l.sqlite", [12, 10, 8], seed=2)
    recluster(lib)
    groups = [g for g in album.groups(lib) if g.kind == "cluster"]
    anna = naming.name_cluster(lib, groups[0].id, "Anna").person_id
    anna_vec = lib.embeddings()[1][
        list(lib.embeddings()[0]).index(album.group_faces(lib, "person", anna)[0])
    ]
    before = {g.id: set(album.group_faces(lib, "cluster", g.id)) for g in groups[1:]}
    # a rescan adds three new photos of Anna and one of a stranger
    rng = np.random.default_rng(9)
    new_ids = []
    for k in range(4):
        v = anna_vec + rng.normal(size=DIM) * 0.3 / np.sqrt(DIM) if k < 3 else rng.normal(size=DIM)
        photo = lib.store_photo(
            f"new{k}.jpg",
            size=1,
            mtime_ns=1,
            width=9,
            height=9,
            content_hash=f"n{k}",
            faces=[NewFace((0, 0, 5, 5), [[0, 0]] * 5, 0.9, b"j", _unit(v))],
            model_id=lib.active_model().id,
        )
        new_ids.append(lib.faces_of_photo(photo)[0].id)
    summary = recluster(lib)
    sugg = {s.face_id: s for s in review.review(lib)}
    # the faces held back are exactly those the review queue offers as likely
    likely = {f for f, s in sugg.items() if s.label == "likely"}
    assert summary.suggested == len(likely) and set(new_ids[:3]) <= likely
    assert set(new_ids[:3]) <= set(sugg) and new_ids[3] not in sugg
    assert all(sugg[f].person_id == anna for f in new_ids[:3])
    assert all(lib.face(f).person_id is None for f in new_ids)  # suggested, not assigned
    assert all(lib.face(f).cluster_id is None for f in new_ids[:3])  # not a new cluster
    for cid, faces in before.items():
        assert set(album.group_faces(lib, "cluster", cid)) == faces
    lib.close()


def test_missing_photos_leave_clusters(tmp_path):
    lib, _ = make_library(tmp_path / "l.sqlite", [10, 10], seed=3)
    recluster(lib)
    lib.mark_missing(["00000.jpg"])
    recluster(lib)
    row = lib.conn.execute(
        "SELECT f.cluster_id FROM faces f JOIN photos p ON p.id = f.photo_id"
        " WHERE p.path = '00000.jpg'"
    ).fetchone()
    assert row == (None,)
    assert sum(g.count for g in album.groups(lib)) == lib.counts()["faces"]
    lib.close()


def test_recluster_without_model_is_a_clear_error(tmp_path):
    lib = Library(tmp_path / "empty.sqlite")
    with pytest.raises(LibraryError, match="no active model"):
        recluster(lib)
    lib.close()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sizes=st.lists(st.integers(1, 14), min_size=2, max_size=6),
    seed=st.integers(0, 10_000),
    actions=st.lists(
        st.tuples(st.sampled_from(["name", "move", "reject", "remove"]), st.integers(0, 10**6)),
        max_size=8,
    ),
)
def test_constraints_hold_after_recluster_property(tmp_path_factory, sizes, seed, actions):
    """Random libraries + random confirmations/rejections: after re-clustering no photo
    has two faces in one cluster/person, no confirmed label or name changed, no
    suggestion proposes a rejected person or a person already in the photo."""
    path = tmp_path_factory.mktemp("prop") / "l.sqlite"
    lib, ident = make_library(path, sizes, seed=seed, second_faces=min(4, sum(sizes) // 2))
    recluster(lib)
    rng = np.random.default_rng(seed)
    for action, pick in actions:
        clusters = [g for g in album.groups(lib) if g.kind == "cluster"]
        persons = [g for g in album.groups(lib) if g.kind == "person"]
        faces = sorted(ident)
        try:
            if action == "name" and clusters:
                naming.name_cluster(lib, clusters[pick % len(clusters)].id, f"P{pick % 4}")
            elif action == "move" and persons:
                people.move_faces(lib, [faces[pick % len(faces)]], persons[pick % len(persons)].id)
            elif action == "reject" and persons:
                pid = persons[pick % len(persons)].id
                members = album.group_faces(lib, "person", pid) or faces
                people.reject_faces(lib, [members[pick % len(members)]], pid)
            elif action == "remove" and clusters:
                cid = clusters[pick % len(clusters)].id
                members = album.group_faces(lib, "cluster", cid)
                people.remove_from_cluster(lib, [members[pick % len(members)]], cid)
        except people.PeopleError:
            pass  # refused (same photo): nothing changed
        if rng.random() < 0.3:
            recluster(lib)
    before = labels_state(lib)
    names = lib.conn.execute("SELECT id, name, hidden FROM people ORDER BY id").fetchall()
    crej = set(lib.conn.execute("SELECT face_id, cluster_id FROM cluster_rejections").fetchall())
    recluster(lib)
    after = labels_state(lib)
    assert {f: p for f, (p, _) in after.items()} == {f: p for f, (p, _) in before.items()}
    assert lib.conn.execute("SELECT id, name, hidden FROM people ORDER BY id").fetchall() == names
    for f, (_, c) in after.items():
        assert (f, c) not in crej
    check_invariants(lib)
    lib.close()


def test_user_edits_during_recluster(tmp_path, monkeypatch):
    """The GUI may name a cluster while a worker re-clusters: the name wins."""
    lib, _ = make_library(tmp_path / "l.sqlite", [12, 10, 8], seed=4)
    recluster(lib)
    target = next(g for g in album.groups(lib) if g.kind == "cluster")
    real = cluster.cluster_vectors
    named = {}

    def slow_cluster(*args, **kwargs):
        result = real(*args, **kwargs)
        named["pid"] = naming.name_cluster(
            lib, target.id, "Anna"
        ).person_id  # meanwhile, in the GUI
        return result

    monkeypatch.setattr(cluster, "cluster_vectors", slow_cluster)
    recluster(lib)
    faces = album.group_faces(lib, "person", named["pid"])
    assert len(faces) == target.count
    assert all(lib.face(f).cluster_id is None for f in faces)
    check_invariants(lib)
    lib.close()


def test_person_distance_cache_matches_fresh_computation():
    """The cached columns give the same answers as computing from scratch."""
    rng = np.random.default_rng(11)
    x, truth = blobs([20, 15, 12, 9, 6, 4], seed=11, spread=0.6)
    n = len(x)
    state = FaceState(
        ids=np.arange(1, n + 1) * 3,
        vectors=x,
        photo=np.arange(n) // 2,
        person=np.zeros(n, np.int64),
        cluster=np.zeros(n, np.int64),
    )
    cache = PersonDistances(max_reps=5)
    for _ in range(30):
        # confirm, unconfirm or move a few faces; sometimes a new face arrives
        rows = rng.choice(n, 3, replace=False)
        state.person[rows] = np.where(rng.random(3) < 0.7, truth[rows] + 1, 0)
        rej = np.stack([state.ids[rng.choice(n, 4)], rng.integers(1, 7, 4)], axis=1)
        got = nearest_people(state, rej, 5, cache=cache, model=1)
        want = nearest_people(state, rej, 5)
        assert np.array_equal(got[0], want[0])
        assert np.allclose(got[1], want[1], atol=1e-5)
        if rng.random() < 0.3:  # a rescan adds a face
            src = int(rng.integers(n))
            v = _unit(x[src] + rng.normal(size=DIM) * 0.02)
            state = FaceState(
                np.append(state.ids, state.ids.max() + 1),
                np.vstack([state.vectors, v]),
                np.append(state.photo, state.photo.max() + 1),
                np.append(state.person, 0),
                np.append(state.cluster, 0),
            )
            truth = np.append(truth, truth[src])
            x = state.vectors
            n += 1


def test_labels_survive_rescan_of_changed_photos(tmp_path):
    """A changed file is stored again (new face rows): its person and "not this
    person" marks carry over, and re-clustering keeps them."""
    lib, _ = make_library(tmp_path / "l.sqlite", [10, 8], seed=5)
    recluster(lib)
    c1, c2 = (g for g in album.groups(lib) if g.kind == "cluster")
    pid = naming.name_cluster(lib, c1.id, "Anna").person_id
    face = album.group_faces(lib, "person", pid)[0]
    other = album.group_faces(lib, "cluster", c2.id)[0]
    people.reject_faces(lib, [other], pid)
    model = lib.active_model().id
    ids, vecs = lib.embeddings()
    paths = {}
    for fid in (face, other):
        row = lib.face(fid)
        paths[fid] = row.photo_path
        lib.store_photo(
            row.photo_path,
            size=2,
            mtime_ns=2,
            width=300,
            height=100,
            content_hash="changed",
            faces=[
                NewFace(
                    tuple(v + 1.0 for v in row.box),  # re-detected a pixel off
                    [[0, 0]] * 5,
                    0.99,
                    b"j",
                    vecs[list(ids).index(fid)],
                )
            ],
            model_id=model,
        )
    recluster(lib)
    assert len(album.group_faces(lib, "person", pid)) == c1.count
    assert lib.conn.execute("SELECT name FROM people").fetchall() == [("Anna",)]
    new_face = {lib.face(f).photo_path: f for f in album.group_faces(lib, "person", pid)}
    assert paths[face] in new_face and new_face[paths[face]] != face
    (rej_face,) = lib.conn.execute(
        "SELECT face_id FROM rejections WHERE person_id = ?", (pid,)
    ).fetchone()
    assert rej_face != other and lib.face(rej_face).photo_path == paths[other]
    assert all(s.person_id != pid for s in review.review(lib) if s.face_id == rej_face)
    check_invariants(lib)
    lib.close()


def test_loose_clusters_dissolve():
    tight, _ = blobs([12], seed=12, spread=0.45)
    loose, _ = blobs([12], seed=13, spread=1.5)  # faces with nothing in common
    x = np.concatenate([tight, loose])
    labels = np.repeat([0, 1], 12)
    assert cluster_steps.split_loose_clusters(x, labels, max_mean_sq=0.5, min_size=4) == (12, 0)
    assert (labels[:12] == 0).all() and (labels[12:] == -1).all()


def test_a_loose_cluster_of_two_people_splits_in_two():
    x, truth = blobs([6, 5], seed=14)
    labels = np.zeros(11, np.int64)
    assert cluster_steps.split_loose_clusters(x, labels, max_mean_sq=0.5, min_size=4) == (0, 2)
    assert agreement(labels, truth) == 1.0


# -- placing new faces (cluster_place) ---------------------------------------------


def _add_photo(lib, name: str, vectors: list[np.ndarray], taken_at: str | None = None) -> list[int]:
    faces = [
        NewFace((10.0 + 100 * k, 0.0, 60.0 + 100 * k, 50.0), [[0, 0]] * 5, 0.99, b"j", v)
        for k, v in enumerate(vectors)
    ]
    model = lib.active_model().id
    photo = lib.store_photo(
        name, size=1, mtime_ns=1, width=300, height=100, content_hash=name, faces=faces,
        model_id=model, taken_at=taken_at,
    )  # fmt: skip
    return [f.id for f in lib.faces_of_photo(photo)]


def _member_vector(lib, cluster_id: int, rng) -> np.ndarray:
    ids, vectors = lib.embeddings()
    members = [f.id for f in lib.faces() if f.cluster_id == cluster_id]
    v = vectors[np.searchsorted(ids, members)].mean(axis=0)
    v = v + rng.normal(size=v.shape) * 0.3 / np.sqrt(len(v))
    return (v / np.linalg.norm(v)).astype(np.float32)


def test_a_large_library_places_new_faces_and_keeps_every_existing_group(tmp_path, monkeypatch):
    lib, _ = make_library(tmp_path / "l.sqlite", [14, 12, 10, 9], seed=7)
    cluster.recluster(lib)
    before = {f.id: f.cluster_id for f in lib.faces()}
    clusters = sorted({c for c in before.values() if c})
    assert len(clusters) == 4
    rng = np.random.default_rng(1)
    a, b = clusters[0], clusters[1]
    near_a = _add_photo(lib, "new-a.jpg", [_member_vector(lib, a, rng)])
    # two faces of one new photo both like cluster b: only one may join it
    pair = _add_photo(lib, "new-b.jpg", [_member_vector(lib, b, rng), _member_vector(lib, b, rng)])
    stranger = rng.normal(size=512)
    far = _add_photo(lib, "new-x.jpg", [(stranger / np.linalg.norm(stranger)).astype(np.float32)])

    monkeypatch.setattr(cluster, "LARGE_LIBRARY", 10)
    summary = cluster.update_groups(lib)
    after = {f.id: f.cluster_id for f in lib.faces()}
    assert all(after[f] == c for f, c in before.items())  # nothing else moved
    assert after[near_a[0]] == a
    assert sorted(after[f] or 0 for f in pair) == [0, b]
    assert after[far[0]] is None
    assert summary.clusters == 4 and summary.faces == 4 and summary.suggested == 0
    check_invariants(lib)
    # placed once: a second call finds nothing new
    assert cluster.place_if_large(lib).faces == 0


def test_new_faces_near_a_named_person_wait_as_suggestions(tmp_path, monkeypatch):
    lib, _ = make_library(tmp_path / "l.sqlite", [14, 12, 10], seed=8)
    cluster.recluster(lib)
    target = next(g for g in album.groups(lib) if g.kind == "cluster")
    rng = np.random.default_rng(2)
    vector = _member_vector(lib, target.id, rng)
    naming.name_cluster(lib, target.id, "Anna")
    new = _add_photo(lib, "new.jpg", [vector])
    monkeypatch.setattr(cluster, "LARGE_LIBRARY", 10)
    placed = cluster.place_if_large(lib)
    assert placed.suggested == 1 and placed.placed == 0
    assert lib.face(new[0]).cluster_id is None and lib.face(new[0]).person_id is None


def test_rejection_pairs_of_the_library_and_of_some_faces(tmp_path):
    """Placement and Review refuse the same people: "not this person", born after the
    photo, and (asked for some faces) a person confirmed elsewhere in the photo."""
    lib, _ = make_library(tmp_path / "l.sqlite", [3], seed=9)
    v = _unit(np.random.default_rng(3).normal(size=(5, DIM)))
    anna, beside = _add_photo(lib, "pair.jpg", [v[0], v[1]])
    (old,) = _add_photo(lib, "old.jpg", [v[2]], taken_at="2000-06-01 12:00:00")
    (refused,) = _add_photo(lib, "refused.jpg", [v[3]])
    (ben,) = _add_photo(lib, "ben.jpg", [v[4]], taken_at="2010-06-01 12:00:00")
    a = people.create_person(lib, "Anna", [anna]).person_id
    b = people.create_person(lib, "Ben", [ben]).person_id
    people.reject_faces(lib, [refused], a)
    birthdays.set_birth_date(lib, b, "2005-01-01")

    def pairs(face_ids=None) -> set[tuple[int, int]]:
        ids = None if face_ids is None else np.array(face_ids, np.int64)
        return {(int(f), int(p)) for f, p in person_distances.rejection_pairs(lib, ids)}

    assert pairs() == {(refused, a), (old, b)}
    assert pairs([beside, old]) == {(beside, a), (old, b)}
    assert pairs([refused]) == {(refused, a)}


def _kept(lib) -> tuple[dict[int, np.ndarray], list[tuple[int, int]]]:
    """The kept centres, brought up to date: centroid by cluster, (person, face) pairs."""
    c = group_centres.fresh(lib)
    reps = sorted(zip(c.rep_person.tolist(), c.rep_ids.tolist(), strict=True))
    return dict(zip(c.cluster_ids.tolist(), c.centroids, strict=True)), reps


def _assert_kept_centres_fresh(lib) -> None:
    """The centres updated from the change log equal the ones computed from scratch."""
    kept, kept_reps = _kept(lib)
    group_centres.rebuild(lib)
    full, full_reps = _kept(lib)
    assert kept.keys() == full.keys()
    assert all(np.allclose(kept[c], full[c], atol=1e-6) for c in full)
    assert kept_reps == full_reps


def test_kept_centres_follow_every_change_of_membership_and_its_undo(tmp_path, monkeypatch):
    monkeypatch.setattr(cluster, "LARGE_LIBRARY", 10)
    lib, _ = make_library(tmp_path / "l.sqlite", [14, 12, 10, 9, 8], seed=7)
    cluster.recluster(lib)  # a large library: the regroup keeps the centres
    assert lib.get_meta(group_centres.MODEL_KEY) == str(lib.active_model().id)
    a, b, c, d, e = sorted({f.cluster_id for f in lib.faces() if f.cluster_id})
    assert set(_kept(lib)[0]) == {a, b, c, d, e}
    people.merge(lib, ("cluster", a), ("cluster", b))
    _assert_kept_centres_fresh(lib)
    assert a not in _kept(lib)[0]
    anna = naming.name_cluster(lib, c, "Anna").person_id
    moved = [f.id for f in lib.faces() if f.cluster_id == d][:3]
    people.move_faces(lib, moved, anna)
    people.remove_from_cluster(lib, [f.id for f in lib.faces() if f.cluster_id == e][:2], e)
    people.rename_person(lib, anna, "Anna B")
    _assert_kept_centres_fresh(lib)
    assert {p for p, _ in _kept(lib)[1]} == {anna}
    while oplog.undo(lib) is not None:
        _assert_kept_centres_fresh(lib)
    assert set(_kept(lib)[0]) == {a, b, c, d, e} and _kept(lib)[1] == []
    gone = [f.photo_id for f in lib.faces() if f.cluster_id == b][:3]
    lib.mark_missing([lib.photo_path(p) for p in gone])
    _assert_kept_centres_fresh(lib)


def test_placement_after_a_merge_and_its_undo_uses_fresh_centroids(tmp_path, monkeypatch):
    monkeypatch.setattr(cluster, "LARGE_LIBRARY", 10)
    lib, _ = make_library(tmp_path / "l.sqlite", [14, 12, 10], seed=7)
    cluster.recluster(lib)
    rng = np.random.default_rng(3)
    a, b, _ = sorted({f.cluster_id for f in lib.faces() if f.cluster_id})
    like_a = [_member_vector(lib, a, rng) for _ in range(2)]
    merged = people.merge(lib, ("cluster", a), ("cluster", b))
    # a is gone: the face goes to the merged cluster (stale centres would send it to a)
    first = _add_photo(lib, "n1.jpg", [like_a[0]])
    assert cluster.place_if_large(lib).placed == 1
    assert lib.face(first[0]).cluster_id == b
    assert oplog.undo(lib).description == merged.description
    # a is back: a face like a's faces joins a again
    second = _add_photo(lib, "n2.jpg", [like_a[1]])
    assert cluster.place_if_large(lib).placed == 1
    assert lib.face(second[0]).cluster_id == a
    _assert_kept_centres_fresh(lib)


def test_a_small_library_is_regrouped_after_a_scan(tmp_path):
    lib, _ = make_library(tmp_path / "l.sqlite", [14, 12], seed=9)
    assert cluster.place_if_large(lib) is None  # never grouped
    cluster.recluster(lib)
    assert cluster.place_if_large(lib) is None  # small: a regroup is quick
    assert cluster.update_groups(lib).clusters == 2
    # nothing is kept for placing, and no trigger slows its edits down
    assert (
        lib.conn.execute("SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger'").fetchone()[0]
        == 0
    )


def test_faces_too_small_to_recognise_stay_in_unknown(tmp_path):
    lib, ident = make_library(tmp_path / "l.sqlite", [8, 8, 6], seed=4)
    small = [f for f, who in ident.items() if who == 2]
    lib.conn.executemany(  # the third person's faces are 12 px boxes
        "UPDATE faces SET x2 = x1 + 12, y2 = y1 + 12 WHERE id = ?", [(f,) for f in small]
    )
    lib.conn.commit()
    summary = recluster(lib)
    state = labels_state(lib)
    assert summary.clusters == 2 and summary.suggested == 0
    assert all(state[f][1] is None for f in small)  # kept, shown in Unknown, not grouped
    assert None not in {state[f][1] for f in ident if f not in small}
    assert recluster(lib, ClusterParams(min_face_px=0)).clusters == 3
    lib.close()


def test_placement_leaves_a_face_too_small_to_group_in_unknown(tmp_path, monkeypatch):
    lib, _ = make_library(tmp_path / "l.sqlite", [14, 12, 10], seed=7)
    cluster.recluster(lib)
    a = sorted({f.cluster_id for f in lib.faces() if f.cluster_id})[0]
    rng = np.random.default_rng(4)
    tiny = _add_photo(lib, "tiny.jpg", [_member_vector(lib, a, rng)])
    big = _add_photo(lib, "big.jpg", [_member_vector(lib, a, rng)])
    lib.conn.execute("UPDATE faces SET x2 = x1 + 12, y2 = y1 + 12 WHERE id = ?", (tiny[0],))
    lib.conn.commit()
    monkeypatch.setattr(cluster, "LARGE_LIBRARY", 10)
    placed = cluster.place_if_large(lib)
    assert placed.faces == 2 and placed.placed == 1 and placed.unknown == 1
    assert lib.face(big[0]).cluster_id == a
    assert lib.face(tiny[0]).cluster_id is None  # as a full regroup leaves it
    recluster(lib)
    assert lib.face(tiny[0]).cluster_id is None and lib.face(big[0]).cluster_id == a


def test_an_unnamed_cluster_keeps_its_faces_when_the_rest_is_named(tmp_path):
    lib, ident = make_library(tmp_path / "l.sqlite", [14, 12, 9, 1, 1, 1], seed=3)
    recluster(lib)
    before = labels_state(lib)
    by_size = sorted((g for g in album.groups(lib) if g.kind == "cluster"), key=lambda g: -g.count)
    last = by_size[2]
    faces = set(album.group_faces(lib, "cluster", last.id))
    for g, name in zip(by_size[:2], ("A", "B"), strict=True):
        naming.name_cluster(lib, g.id, name, leave_out=())
    # the nine faces are nearly all that is left unconfirmed: HDBSCAN alone finds no
    # cluster among them; the group the user saw stays, same id, same faces
    assert recluster(lib).clusters == 1
    assert set(album.group_faces(lib, "cluster", last.id)) == faces
    strangers = [f for f, who in ident.items() if who >= 3]
    assert all(labels_state(lib)[f] == before[f] == (None, None) for f in strangers)
    check_invariants(lib)
