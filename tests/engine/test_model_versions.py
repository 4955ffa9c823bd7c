"""The model-version registry: idempotent registration, one error for foreign weights."""

from __future__ import annotations

import dataclasses
import hashlib
import threading

import pytest
import torch

from faceapp.engine import (
    model_versions,
)
from faceapp.engine import model_versions as mv
from faceapp.engine.library import Library, LibraryError


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


def test_an_offline_library_keeps_its_weights_once_vggface2_is_downloaded(
    tmp_path, real_weights, monkeypatch
):
    """Going online must neither lock a CASIA-WebFace library out nor make it download."""
    import dataclasses

    from faceapp.engine import weights

    lib = Library(tmp_path / "lib.sqlite", root=tmp_path)
    model_versions.register_base(lib, real_weights)
    assert lib.active_model().source == "casia-webface"
    calls = []

    def vggface2(allow_download=False):
        calls.append(allow_download)
        return dataclasses.replace(real_weights, source="vggface2", sha256="f" * 64)

    monkeypatch.setattr(weights, "vggface2_weights", vggface2)
    loaded = model_versions.active_weights(lib)
    assert loaded.sha256 == real_weights.sha256 and calls == []
    # a new library still prefers VGGFace2 (the documented order)
    fresh = Library(tmp_path / "new.sqlite", root=tmp_path)
    assert model_versions.active_weights(fresh).source == "vggface2" and calls == [False]


def test_a_replaced_fine_tuned_weights_file_is_refused(tmp_path, real_weights):
    """Embeddings of one version must never be mixed with another network's."""
    path = tmp_path / "finetuned.pt"
    torch.save(real_weights.state_dict, path)
    lib = Library(tmp_path / "lib.sqlite", root=tmp_path)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    model = lib.add_model(
        name="fine-tuned",
        source="finetuned",
        origin="test",
        sha256=sha,
        path=str(path),
        preprocess="fixed",
        threshold=1.0,
        threshold_source="test",
    )
    lib.set_active_model(model)
    assert model_versions.active_weights(lib).sha256 == sha
    changed = dict(real_weights.state_dict)
    changed["last_bn.bias"] = changed["last_bn.bias"] + 1
    torch.save(changed, path)
    with pytest.raises(LibraryError, match="changed on disk"):
        model_versions.active_weights(lib)
