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
    people.create_person(lib, "Tony Blair", one_per_photo)
    pid = lib.conn.execute("SELECT id FROM people WHERE name = 'Tony Blair'").fetchone()[0]
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


def test_photo_view_decodes_heic_upright(tmp_path, lfw_dir):
    from PIL import Image

    from faceapp.gui.widgets.photo_canvas import load_display_image

    face = Image.open(lfw_dir / "Tony_Blair" / "Tony_Blair_0001.jpg").convert("RGB")
    shown = Image.new("RGB", (250, 400), "white")
    shown.paste(face, (0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6
    shown.transpose(Image.Transpose.ROTATE_90).save(
        tmp_path / "a.heic", format="HEIF", exif=exif.tobytes()
    )
    image, full = load_display_image(tmp_path / "a.heic", max_side=200)
    assert (full.width(), full.height()) == (250, 400)
    assert not image.isNull() and max(image.width(), image.height()) <= 200
    assert image.height() > image.width()  # upright, as the scan sees it
    assert image.pixelColor(image.width() // 2, image.height() - 5).lightness() > 240  # white foot


def test_conflicts_dialog_lists_and_forgets(qtbot, tmp_path):
    import numpy as np

    from faceapp.engine.library_photos import NewFace
    from faceapp.gui.dialogs.tags import ConflictsDialog

    lib = Library(tmp_path / "lib.sqlite", root=tmp_path)
    model = lib.add_model(
        name="m",
        source="user",
        origin="-",
        sha256="0" * 64,
        preprocess="fixed",
        threshold=1.0,
        threshold_source="test",
    )
    face = NewFace((1, 1, 50, 50), [], 1.0, b"jpeg", np.ones(512, np.float32) / np.sqrt(512))
    photo = lib.store_photo(
        "a.jpg",
        size=1,
        mtime_ns=1,
        width=100,
        height=100,
        content_hash="x",
        faces=[face],
        model_id=model,
    )
    with lib.transaction() as c:
        face_tags._ensure_table(c)
        region = xmp_faces.Region("Ann", (0.0, 0.0, 0.5, 0.5), "mwg")
        face_tags._conflict(c, photo, lib.faces_of_photo(photo)[0].id, region, "you named it Bo")
    dialog = ConflictsDialog(lib)
    qtbot.addWidget(dialog)
    assert dialog.list.item(0).text() == "a.jpg: the tag says Ann (mwg), but you named it Bo"
    dialog.forget.click()
    assert dialog.list.item(0).text() == "No conflicts." and not dialog.forget.isEnabled()
    assert face_tags.conflicts(lib) == []
