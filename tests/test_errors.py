"""One base class for expected failures: every engine error is a FaceAppError, and the
command line turns any of them into one line on stderr and its exit status."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import faceapp.engine
from faceapp.cli import main
from faceapp.errors import FaceAppError


def _engine_exception_classes() -> list[type[BaseException]]:
    found = []
    for info in pkgutil.walk_packages(faceapp.engine.__path__, "faceapp.engine."):
        module = importlib.import_module(info.name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, BaseException) and obj.__module__ == module.__name__:
                found.append(obj)
    return found


def test_every_engine_error_subclasses_the_base_class():
    errors = [c for c in _engine_exception_classes() if c.__name__.endswith("Error")]
    assert len(errors) >= 5, errors
    assert [c for c in errors if not issubclass(c, FaceAppError)] == []


def test_cli_prints_one_line_for_an_engine_error(tmp_path, capsys):
    bad = tmp_path / "notes.sqlite"
    bad.write_text("not a library")
    code = main(["people", "--library", str(bad)])
    err = capsys.readouterr().err
    assert code == 1
    assert (
        err.count("\n") == 1 and err.startswith("faceapp: ") and "not a Face Album library" in err
    )


def test_cli_exit_status_comes_from_the_error_class(tmp_path, capsys):
    text = tmp_path / "a.jpg"
    text.write_text("just text")
    code = main(["verify", str(text), str(text)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and "not an image" in err
