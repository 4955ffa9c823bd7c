"""What the command line prints and writes: escaped names, a log file, no network.

Names come from files and users: an escape sequence in one must not reach the
terminal, and a newline must not forge a report line. JSON stays valid JSON.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from small_library import small_library

from faceapp.cli import main
from faceapp.cli.terminal import safe
from faceapp.engine import people
from faceapp.engine.library import Library
from faceapp.logsetup import log_file

REPO = Path(__file__).resolve().parents[2]
EVIL = "Eve\x1b]0;owned\x07\x1b[2J\n   99  Forged line"


def test_safe_escapes_controls_and_keeps_names():
    assert safe("Zoë Ångström 李") == "Zoë Ångström 李"
    assert safe("a\x1b[2Jb\nc\rd\x07\x7f\x9b") == "a\\x1b[2Jb\\x0ac\\x0dd\\x07\\x7f\\x9b"
    assert safe("\u202eevil\u2028x") == "\\u202eevil\\u2028x"
    assert safe(os.fsdecode(b"bad\xff.jpg")) == "bad\\xff.jpg"


def _library(path: Path, photo: str, name: str, faces: int = 1) -> Path:
    """A real library: ``faces`` photos with one face each, the first (``photo``) named
    ``name``."""
    names = [photo] + [f"other{i}.jpg" for i in range(1, faces)]
    lib = small_library(path, np.eye(faces, 512, dtype=np.float32), names)
    people.create_person(lib, name, [lib.faces()[0].id])
    lib.close()
    return path


def test_people_faces_and_names_are_escaped(tmp_path, capsys):
    lib = _library(tmp_path / "lib.sqlite", f"{EVIL}.jpg", EVIL)
    (name,) = Library(lib).conn.execute("SELECT name FROM people").fetchone()
    assert "\x1b" in name  # stored as given (the engine only folds whitespace)
    assert main(["people", "--library", str(lib)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert out.splitlines() == [
        f"{'p1':>8}  {1:>6}  {safe(name)}",
        f"{'':>8}  {0:>6}  Unknown faces",
    ]

    assert main(["faces", "--library", str(lib)]) == 0
    out = capsys.readouterr().out
    assert len(out.splitlines()) == 1 and safe(EVIL) in out and "\x1b" not in out

    assert main(["name", "p1", "Eve", "--library", str(lib)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines() == [f"Renamed {safe(name)} to Eve"]

    assert main(["faces", "--library", str(lib), "--json"]) == 0
    (face,) = json.loads(capsys.readouterr().out)["faces"]
    assert face["photo"] == f"{EVIL}.jpg"  # JSON: exact, escaped by json itself


def test_errors_are_one_escaped_line_and_logged(tmp_path, capsys):
    missing = tmp_path / f"{EVIL}.sqlite"
    assert main(["people", "--library", str(missing)]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [f"faceapp: no library at {safe(missing)}"]
    logged = log_file().read_text()
    assert "faceapp people --library" in logged and "failed: no library at" in logged


# --- commands that need no network model start without torch ----------------------------

TORCH_RUNNER = (
    "import sys; from faceapp.cli import main; code = main(sys.argv[1:]); "
    "print('TORCH', 'torch' in sys.modules, file=sys.stderr); sys.exit(code)"
)


def test_library_commands_do_not_import_torch(tmp_path):
    """Issue 11's list: people, faces, photos, name, merge, move, reject, undo, redo,
    suggestions, models."""
    lib = _library(tmp_path / "lib.sqlite", "anna.jpg", "Anna", faces=3)
    people.create_person(Library(lib), "Ben", [2])
    at = ["--library", str(lib)]
    commands = [
        ["people", *at],
        ["faces", *at],
        ["photos", *at],
        ["name", "Anna", "Anne", *at],
        ["move", "3", "--to", "Anne", *at],
        ["reject", "3", "--from", "Anne", *at],
        ["merge", "Ben", "Anne", *at],
        ["undo", *at],
        ["redo", *at],
        ["suggestions", *at],
        ["models", *at],
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for command in commands:
        done = subprocess.run(
            [sys.executable, "-c", TORCH_RUNNER, *command],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert done.returncode == 0, (command, done.stderr)
        assert done.stderr.splitlines()[-1] == "TORCH False", command


# --- no network unless asked -----------------------------------------------------------

RUNNER = textwrap.dedent(
    """
    import json, socket, sys
    attempts = []
    def refuse(*args, **kwargs):
        attempts.append(repr(args[-1] if args else kwargs))
        raise OSError(101, "Network is unreachable")
    socket.create_connection = refuse
    socket.getaddrinfo = refuse
    socket.socket.connect = lambda self, address: refuse(address)
    from faceapp.cli import main
    code = main(sys.argv[1:])
    print("ATTEMPTS " + json.dumps(attempts), file=sys.stderr)
    sys.exit(code)
    """
)


def _offline(tmp_path: Path, *args: str) -> tuple[int, list[str], list[str]]:
    """Run faceapp with every connection refused: (exit code, stderr lines, attempts)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "TORCH_HOME": str(tmp_path / "torch")}
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, *args], capture_output=True, text=True, env=env, timeout=600
    )
    lines = done.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("ATTEMPTS "), done.stderr
    return done.returncode, lines[:-1], json.loads(lines[-1].removeprefix("ATTEMPTS "))


def test_weights_offline_tries_no_connection(tmp_path, real_weights):
    code, err, attempts = _offline(tmp_path, "weights", "--json")
    assert code == 0 and attempts == [], err


def test_download_only_when_asked_and_a_clear_line_offline(tmp_path, real_weights):
    code, err, attempts = _offline(tmp_path, "weights", "--download")
    assert code == 1 and attempts  # asked for: it tried, and said why it failed
    assert err == [
        "faceapp: could not download the VGGFace2 weights ([Errno 101] Network is"
        " unreachable); check the internet connection, or keep using the offline weights"
    ]
    assert not list((tmp_path / "torch").rglob("*.pt*"))


@pytest.mark.slow
def test_verify_offline_tries_no_connection(tmp_path, lfw_dir, real_weights):
    photos = sorted((lfw_dir / "Aaron_Eckhart").glob("*.jpg"))[:1]
    photos += sorted((lfw_dir / "Abel_Pacheco").glob("*.jpg"))[:1]
    code, err, attempts = _offline(tmp_path, "verify", *map(str, photos), "--device", "cpu")
    assert code == 0 and attempts == [], err


# --- a scan: escaped errors, broken links reported, Pillow's warnings only in the log ------


@pytest.mark.slow
def test_scan_report_is_escaped_and_quiet(tmp_path, lfw_dir, real_weights):
    root = tmp_path / "photos"
    root.mkdir()
    shutil.copy(sorted((lfw_dir / "Aaron_Eckhart").glob("*.jpg"))[0], root / "face.jpg")
    (root / f"{EVIL}.jpg").write_text("not a photo")
    (root / "gone.jpg").symlink_to(tmp_path / "moved.jpg")
    exif = b"Exif\x00\x00II*\x00\x08\x00\x00\x00\x1e\x00\x12\x01\x03\x00\x01\x00\x00\x00\x06\x00"
    Image.new("RGB", (64, 64), "gray").save(root / "odd_exif.jpg", exif=exif)  # Pillow warns
    data = tmp_path / "data"
    env = {**os.environ, "PYTHONPATH": str(REPO), "FACEAPP_DATA_DIR": str(data)}
    done = subprocess.run(
        [sys.executable, "-m", "faceapp", "scan", str(root), "--device", "cpu"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout
    lines = done.stdout.splitlines()
    assert lines[0].startswith("2 photos scanned, 1 faces, 0 unchanged, 2 errors")
    assert sorted(lines[1:]) == sorted(
        [
            f"  gone.jpg: broken link: {tmp_path / 'moved.jpg'} does not exist",
            f"  {safe(EVIL)}.jpg: not an image (the file contains text)",
        ]
    )
    assert done.stderr == ""  # Pillow's "Corrupt EXIF data" went to the log
    assert "Corrupt EXIF data" in (data / "logs" / "faceapp.log").read_text()


def test_a_reader_that_stops_early_is_no_error(tmp_path):
    """`faceapp faces | head -1` prints its first line and no traceback."""
    # more lines than a pipe holds, so the writer meets the closed pipe for sure
    n = 2500
    vectors = np.random.default_rng(0).normal(size=(n, 512)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    names = ["first.jpg"] + [f"photo_{i:05d}_with_a_long_name.jpg" for i in range(1, n)]
    lib = tmp_path / "lib.sqlite"
    small_library(lib, vectors, names).close()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        f"{sys.executable} -m faceapp faces --library {lib} | head -1",
        shell=True,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.stdout.splitlines() and "first.jpg" in done.stdout.splitlines()[0]
    assert done.stderr == ""
