"""Hostile weights files are refused before torch inflates anything, and quickly.

The files are the attack's: a small archive declaring gigabytes of tensors, a huge
(sparse) file, a symlink to /dev/zero, a FIFO, and a real file that is loaded fine.
bench/hostile_weights.py times the same refusals through the CLI.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest
import torch

from faceapp.engine import state_dict
from faceapp.engine import weights as W
from faceapp.engine import weights_file as WF

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def valid_state() -> dict[str, torch.Tensor]:
    return W.random_weights().state_dict


def _zip_with_sizes(data: bytes, sizes: dict[str, int]) -> bytes:
    """The archive with its central directory claiming other uncompressed sizes."""
    out = bytearray(data)
    pos = out.find(b"PK\x01\x02")
    while pos >= 0:
        (name_len,) = struct.unpack_from("<H", out, pos + 28)
        name = bytes(out[pos + 46 : pos + 46 + name_len]).decode()
        if name in sizes:
            struct.pack_into("<I", out, pos + 24, sizes[name])
        pos = out.find(b"PK\x01\x02", pos + 46)
    return bytes(out)


def test_archive_declaring_gigabytes_is_refused_unread(tmp_path):
    buf = io.BytesIO()
    torch.save({"last_bn.bias": torch.zeros(512)}, buf)
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as archive:
        storage = next(n for n in archive.namelist() if n.endswith("/data/0"))
    path = tmp_path / "bomb.pt"
    path.write_bytes(_zip_with_sizes(buf.getvalue(), {storage: 0xF000_0000}))  # 3.75 GiB
    with pytest.raises(W.WeightsError, match="declares 3,840 MiB of archive members"):
        state_dict.load_state_dict_file(path)


class _Storage:
    """Pickled as torch's storage record for 2^31 floats (8 GiB)."""


class _TorchLikePickler(pickle.Pickler):
    def persistent_id(self, obj: object) -> object:
        if isinstance(obj, _Storage):
            return ("storage", torch.FloatStorage, "0", "cpu", 2**31)
        return None


def test_pickle_records_declaring_gigabytes_are_refused(tmp_path):
    """An honest zip directory, but a storage record of 2^31 floats."""
    structure = io.BytesIO()
    _TorchLikePickler(structure, protocol=2).dump({"last_bn.bias": _Storage()})
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("archive/data.pkl", structure.getvalue())
        archive.writestr("archive/data/0", b"\0" * 16)
    path = tmp_path / "records.pt"
    path.write_bytes(out.getvalue())
    with pytest.raises(W.WeightsError, match="declares 8,192 MiB of tensors"):
        state_dict.load_state_dict_file(path)


def test_huge_sparse_file_is_refused_by_its_size(tmp_path):
    path = tmp_path / "huge.pt"
    with open(path, "wb") as handle:
        handle.write(WF.ZIP_HEADER)
        handle.truncate(3 * 2**30)  # 3 GiB, sparse: costs no disk
    t0 = time.perf_counter()
    with pytest.raises(W.WeightsError, match=r"3,072 MiB, larger than any FaceNet weights file"):
        state_dict.load_state_dict_file(path)
    assert time.perf_counter() - t0 < 5  # refused from its size, not read


def test_symlink_to_dev_zero_is_refused_unread(tmp_path):
    path = tmp_path / "zero.pt"
    path.symlink_to("/dev/zero")
    with pytest.raises(W.WeightsError, match="not a regular file"):
        state_dict.load_state_dict_file(path)


def test_fifo_is_refused_without_hanging(tmp_path):
    path = tmp_path / "fifo.pt"
    os.mkfifo(path)
    result: list[BaseException] = []

    def load() -> None:
        try:
            state_dict.load_state_dict_file(path)
        except W.WeightsError as exc:
            result.append(exc)

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    thread.join(20)
    assert not thread.is_alive(), "reading a FIFO hung"
    assert "not a regular file" in str(result[0])


def test_legacy_format_still_loads_and_is_checked(tmp_path, valid_state):
    path = tmp_path / "legacy.pt"
    torch.save(valid_state, path, _use_new_zipfile_serialization=False)
    assert path.read_bytes().startswith(WF.LEGACY_HEADER)
    loaded = state_dict.load_state_dict_file(path)
    assert torch.equal(loaded["last_bn.bias"], valid_state["last_bn.bias"])
    # a storage whose own size header disagrees with its record is refused
    small = tmp_path / "small.pt"
    torch.save({"last_bn.bias": torch.zeros(512)}, small, _use_new_zipfile_serialization=False)
    data = small.read_bytes()
    header = struct.pack("<q", 512)
    assert data.count(header) == 1
    small.write_bytes(data.replace(header, struct.pack("<q", 2**40)))
    with pytest.raises(W.WeightsError, match="declares another size"):
        state_dict.load_state_dict_file(small)


def test_survey_runs_no_code(tmp_path):
    marker = tmp_path / "owned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    payload = pickle.dumps({"x": Exploit()}, protocol=2)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("archive/data.pkl", payload)
    with pytest.raises(W.WeightsError):
        WF._load(buf.getvalue(), "evil.pt")
    assert not marker.exists()


def test_time_limit_refuses_a_stalled_read(tmp_path, monkeypatch):
    path = tmp_path / "slow.pt"
    path.write_bytes(b"x")
    monkeypatch.setattr(WF, "read_limited", lambda p: time.sleep(30))
    t0 = time.perf_counter()
    with pytest.raises(W.WeightsError, match="took longer than 1 s"):
        WF.load_limited(path, limit=1.0)
    assert time.perf_counter() - t0 < 10


def test_real_weights_pass_the_limits(valid_state, tmp_path):
    path = tmp_path / "real.pt"
    torch.save({**valid_state, "logits.weight": torch.zeros(8631, 512)}, path)  # as VGGFace2
    data = path.read_bytes()
    assert 90 * 2**20 < WF.check_declared_sizes(data, str(path)) < WF.MAX_TENSOR_BYTES
    assert set(state_dict.load_state_dict_file(path)) == set(state_dict.expected_shapes())


def test_cli_refuses_a_fifo_in_one_line_before_loading_torch(tmp_path):
    path = tmp_path / "fifo.pt"
    os.mkfifo(path)
    runner = (
        "import sys; from faceapp.cli import main; code = main(sys.argv[1:]); "
        "print('TORCH', 'torch' in sys.modules, file=sys.stderr); sys.exit(code)"
    )
    done = subprocess.run(
        [sys.executable, "-c", runner, "weights", "--weights", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"faceapp: {path}: not a regular file (a pipe, socket or device); refused unread",
        "TORCH False",
    ]
