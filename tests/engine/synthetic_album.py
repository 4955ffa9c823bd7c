"""A small library of synthetic faces for the naming, review and photo tests.

Tight identities far apart (squared L2 within ~0.4, between ~1.8), one face per
photo plus photos of two people; every photo has a date (identity k's photos are
taken in year 2000 + index), so birth dates and "photos by date" can be checked.
"""

from __future__ import annotations

import numpy as np

from faceapp.engine.library import Library
from faceapp.engine.library_photos import NewFace

DIM = 512


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


class Album:
    """A library plus the truth: face id -> identity, and a way to add photos later."""

    def __init__(self, path, identities: int = 4, per_identity: int = 8, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        self.centres = unit(self.rng.normal(size=(identities, DIM)))
        self.lib = Library(path)
        self.model = self.lib.add_model(
            name="test",
            source="test",
            origin="synthetic",
            sha256="0" * 64,
            preprocess="fixed",
            threshold=1.1,
            threshold_source="test",
        )
        self.lib.set_active_model(self.model)
        self.truth: dict[int, int] = {}
        self.n = 0
        for ident in range(identities):
            for k in range(per_identity):
                self.photo([ident], year=2000 + k)

    def vector(self, identity: int, noise: float = 0.45) -> np.ndarray:
        return unit(self.centres[identity] + self.rng.normal(size=DIM) * noise / np.sqrt(DIM))

    def photo(
        self, identities: list[int], year: int = 2010, vectors: list[np.ndarray] | None = None
    ) -> list[int]:
        """Store one photo holding these identities (left to right); returns face ids."""
        self.n += 1
        path = f"photos/{self.n:04d}.jpg"
        vecs = vectors or [self.vector(i) for i in identities]
        faces = [
            NewFace((10.0 + 100 * k, 10.0, 60.0 + 100 * k, 60.0), [], 0.99, b"jpeg", v)
            for k, v in enumerate(vecs)
        ]
        pid = self.lib.store_photo(
            path,
            size=1,
            mtime_ns=1,
            width=100 * len(vecs) + 50,
            height=100,
            content_hash=path,
            faces=faces,
            model_id=self.model,
            taken_at=f"{year:04d}-06-01T12:00:00",
        )
        ids = [f.id for f in self.lib.faces_of_photo(pid)]
        for i, fid in zip(identities, ids, strict=True):
            self.truth[fid] = i
        return ids

    def faces_of(self, identity: int) -> list[int]:
        return sorted(f for f, i in self.truth.items() if i == identity)
