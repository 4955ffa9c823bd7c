"""The faces of a library as aligned arrays, with the embeddings kept in memory
between calls while the embedding table is unchanged."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from faceapp.engine.library import Library
from faceapp.engine.library_photos import blob_to_matrix

_vector_lock = threading.Lock()
_vector_cache: dict[str, tuple[tuple, np.ndarray, np.ndarray]] = {}


@dataclass
class FaceState:
    """Every face of the active model's photos: arrays aligned by row."""

    ids: np.ndarray  # int64 face ids, ascending
    vectors: np.ndarray  # float32 [n, 512] unit
    photo: np.ndarray  # int64 photo ids
    person: np.ndarray  # int64, 0 = unconfirmed
    cluster: np.ndarray  # int64, 0 = none

    def __len__(self) -> int:
        return len(self.ids)


def _cached_embeddings(lib: Library) -> tuple[np.ndarray, np.ndarray]:
    """``lib.embeddings()``, kept in memory while the embedding table is unchanged
    (reading 50,000 vectors from SQLite takes seconds; the check takes milliseconds)."""
    model = lib.active_model()
    if model is None:
        return lib.embeddings()
    sig = (
        model.id,
        *lib.conn.execute(
            "SELECT COUNT(*), MAX(e.face_id), SUM(e.face_id) FROM embeddings e"
            " JOIN faces f ON f.id = e.face_id JOIN photos p ON p.id = f.photo_id"
            " WHERE e.model_id = ? AND p.status = 'ok'",
            (model.id,),
        ).fetchone(),
    )
    key = str(lib.path.resolve())
    with _vector_lock:
        hit = _vector_cache.get(key)
    if hit is not None and hit[0] == sig:
        return hit[1], hit[2]
    grown = _appended(lib, model.id, hit, sig) if hit is not None else None
    ids, vectors = grown if grown is not None else lib.embeddings(model.id)
    with _vector_lock:
        if key not in _vector_cache:  # one library at a time: the vectors are large
            _vector_cache.clear()
        _vector_cache[key] = (sig, ids, vectors)
    return ids, vectors


def _appended(
    lib: Library, model_id: int, hit: tuple[tuple, np.ndarray, np.ndarray], sig: tuple
) -> tuple[np.ndarray, np.ndarray] | None:
    """The cached vectors plus the faces added since (a scan only adds higher ids),
    or None when anything else changed: then everything is read again."""
    old_sig, old_ids, old_vectors = hit
    if old_sig[0] != model_id or not len(old_ids) or sig[1] is None:
        return None
    rows = lib.conn.execute(
        "SELECT e.face_id, e.vector FROM embeddings e JOIN faces f ON f.id = e.face_id"
        " JOIN photos p ON p.id = f.photo_id WHERE e.model_id = ? AND p.status = 'ok'"
        " AND e.face_id > ? ORDER BY e.face_id",
        (model_id, int(old_ids[-1])),
    ).fetchall()
    new_ids = np.array([r[0] for r in rows], np.int64)
    same_old = (
        len(old_ids) + len(new_ids) == sig[1] and int(old_ids.sum()) + int(new_ids.sum()) == sig[3]
    )
    if not same_old or not len(rows):
        return None
    return np.concatenate([old_ids, new_ids]), np.vstack(
        [old_vectors, blob_to_matrix([r[1] for r in rows])]
    )


def load_state(lib: Library) -> FaceState:
    """Faces of photos present on disk, with their active-model embeddings."""
    ids, vectors = _cached_embeddings(lib)
    rows = lib.conn.execute(
        "SELECT f.id, f.photo_id, IFNULL(f.person_id, 0), IFNULL(f.cluster_id, 0)"
        " FROM faces f JOIN photos p ON p.id = f.photo_id WHERE p.status = 'ok' ORDER BY f.id"
    ).fetchall()
    meta = np.array(rows, dtype=np.int64).reshape(-1, 4)
    if len(meta) == 0 or len(ids) == 0:
        empty = np.zeros(0, np.int64)
        return FaceState(empty, np.zeros((0, vectors.shape[1]), np.float32), empty, empty, empty)
    pos = np.minimum(np.searchsorted(meta[:, 0], ids), len(meta) - 1)
    ok = meta[pos, 0] == ids
    if not ok.all():  # a face deleted between the two reads
        ids, vectors, pos = ids[ok], vectors[ok], pos[ok]
    return FaceState(ids, vectors, meta[pos, 1], meta[pos, 2], meta[pos, 3])
