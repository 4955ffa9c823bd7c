"""File menu: Write Face Tags… and Export Photos of a Person… on a real scanned album."""

from __future__ import annotations

import shutil

import pytest
from guihelpers import open_and_wait

from faceapp.engine import face_tags, people, xmp_faces
from faceapp.engine.library import Library
from faceapp.gui.dialogs.tags import ExportDialog, WriteTagsDialog
from faceapp.gui.mime import GroupKey


@pytest.mark.slow
def test_write_tags_and_export_dialogs(qtbot, window, scanned_library, tmp_path):
    folder, library = scanned_library
    album = tmp_path / "album"
    shutil.copytree(folder, album)  # the dialogs write next to the photos: a private copy
    Library(library, root=album).close()
    open_and_wait(qtbot, window, library=library)
    lib = window.session.lib
    faces = [f for f in lib.faces() if f.photo_path.startswith("Tony_Blair/")]
    one_per_photo = list({f.photo_path: f.id for f in faces}.values())
    pid = people.create_person(lib, "Tony Blair", one_per_photo).person_id
    window.session.changed.emit()
    window.show_group(GroupKey("person", pid))

    menu_texts = [a.text() for a in window.menuBar().actions()[0].menu().actions()]
    assert "Write Face &Tags…" in menu_texts and "E&xport Photos of a Person…" in menu_texts

    dialog = WriteTagsDialog(lib, pid, window)
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.chosen() == [pid]  # the person shown in the window is preselected
    dialog.preview.click()
    qtbot.waitUntil(lambda: dialog.result.isVisible(), timeout=60_000)
    assert f"{len(one_per_photo)} would be written" in dialog.result.toPlainText()
    assert not list(album.rglob("*.xmp"))
    dialog.write.click()
    done = f"{len(one_per_photo)} written,"
    qtbot.waitUntil(lambda: done in dialog.result.toPlainText(), timeout=60_000)
    sidecars = sorted(album.rglob("*.xmp"))
    assert len(sidecars) == len(one_per_photo)
    for sidecar in sidecars:
        names = {r.name for r in xmp_faces.read(sidecar.read_bytes()).regions}
        assert names == {"Tony Blair"}
        assert face_tags.read_tags(sidecar.with_suffix(""))[0]

    target = tmp_path / "export"
    export = ExportDialog(lib, pid, window)
    qtbot.addWidget(export)
    export.show()
    assert export.person.currentText() == "Tony Blair"
    export.folder.setText(str(target))
    export.go.click()
    qtbot.waitUntil(lambda: export.result.isVisible(), timeout=60_000)
    assert f"{len(one_per_photo)} of {len(one_per_photo)} photos exported" in (
        export.result.toPlainText()
    )
    assert sorted(p.name for p in target.iterdir()) == sorted(
        {f.photo_path.split("/")[-1] for f in faces}
    )
