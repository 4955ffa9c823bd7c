"""The model-version registry: idempotent registration, one error for foreign weights."""

from __future__ import annotations

import dataclasses
import threading

import pytest

from faceapp.engine import model_versions as mv
from faceapp.engine.library import Library


def test_register_base_is_idempotent_across_connections(tmp_path, real_weights):
    path = tmp_path / "lib.sqlite"
    libs = [Library(path) for _ in range(4)]
    found: list[int] = []

    def register(lib: Library) -> None:
        found.append(mv.register_base(lib, real_weights).id)

    threads = [threading.Thread(target=register, args=(lib,)) for lib in libs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # four writers at once: one base row, the same one for all
    assert len(set(found)) == 1 and [m.id for m in libs[0].models()] == found[:1]
    assert mv.register_base(libs[0], real_weights).id == found[0]
    # a library embedded with other weights refuses them rather than mixing spaces
    other = dataclasses.replace(real_weights, source="user", sha256="e" * 64)
    with pytest.raises(mv.ModelError, match="embedded with casia-webface"):
        mv.register_base(libs[0], other)
    for lib in libs:
        lib.close()


def test_versions_list_and_active_weights_use_the_version_threshold(tmp_path, real_weights):
    lib = Library(tmp_path / "lib.sqlite")
    info = mv.register_base(lib, real_weights)
    lib.update_model(info.id, threshold=0.9, threshold_source="calibrated here")
    loaded = mv.active_weights(lib)
    assert loaded.sha256 == real_weights.sha256
    assert (loaded.threshold, loaded.threshold_source) == (0.9, "calibrated here")
    (listed,) = mv.versions(lib)
    assert listed.active and listed.file_ok is None and listed.heldout == (None, None)
    with pytest.raises(mv.ModelError, match="active"):
        mv.remove_version(lib, info.id)
    lib.close()
