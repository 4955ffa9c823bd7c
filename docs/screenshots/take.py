"""Regenerate the screenshots in this folder from the real app.

Runs the real main window on a small album of LFW photos (copied to a temp
folder, real weights, real scan and clustering) and saves one PNG per screen.
Under a display-less machine it re-runs itself inside Xvfb (``xvfb-run``, from
the ``xvfb`` package) so the app uses its normal X11 platform; with
``--offscreen`` it uses Qt's offscreen platform instead.

    python docs/screenshots/take.py [--out docs/screenshots] [--offscreen]

The script plays a user: it opens the folder, waits for the scan, names the
clusters (with the names of the LFW folders their faces come from), merges a
duplicate person, adds new photos and reviews the suggestions, opens a photo,
verifies two photos, opens the settings, damages the library file and restores its
backup, runs a short fine-tune, accepts it and lists the model versions.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
LFW = Path(os.environ.get("FACEAPP_LFW", ROOT.parent / "shared" / "data" / "lfw"))
FACES = LFW / "lfw-deepfunneled"
ALBUM = {  # person -> how many photos at first (sorted order)
    "Colin_Powell": 7,
    "Serena_Williams": 7,
    "Junichiro_Koizumi": 6,
    "Tony_Blair": 7,
    "Hugo_Chavez": 6,
    "Gerhard_Schroeder": 6,
}
GROUP_PHOTO = FACES / "Colin_Powell" / "Colin_Powell_0011.jpg"  # three faces
LATER = [("Tony_Blair", 20), ("Tony_Blair", 21), ("Serena_Williams", 20)]  # added before review
SIZE = (1280, 800)


def relaunch_under_xvfb() -> None:
    if os.environ.get("DISPLAY") or os.environ.get("QT_QPA_PLATFORM") or "--offscreen" in sys.argv:
        return
    xvfb = shutil.which("xvfb-run")
    if xvfb is None:
        print("xvfb-run not found (apt-get install -y xvfb); using the offscreen platform")
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        return
    cmd = [xvfb, "-a", "-s", "-screen 0 1600x1000x24", sys.executable, *sys.argv]
    raise SystemExit(subprocess.call(cmd))


def start_window_manager() -> subprocess.Popen | None:
    """Under Xvfb, a window manager gives the windows and dialogs their title bars."""
    wm = shutil.which("openbox")
    if wm is None or not os.environ.get("DISPLAY"):
        return None
    proc = subprocess.Popen([wm], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    return proc


def make_album(dest: Path) -> Path:
    for person, n in ALBUM.items():
        (dest / person).mkdir(parents=True, exist_ok=True)
        for photo in sorted((FACES / person).iterdir())[:n]:
            shutil.copy2(photo, dest / person / photo.name)
    shutil.copy2(GROUP_PHOTO, dest / "Colin_Powell" / GROUP_PHOTO.name)
    return dest


def name_clusters(window, *, lib_of, keep_unnamed: int) -> None:
    """Name each cluster after the LFW folder most of its faces come from, as a user
    who knows these people would (the smallest ``keep_unnamed`` clusters stay unnamed)."""
    from faceapp.gui.mime import GroupKey

    lib = lib_of.lib
    clusters = [g for g in window.sidebar_model.groups() if g.kind == "cluster"]
    clusters.sort(key=lambda g: -g.count)
    for g in clusters[: len(clusters) - keep_unnamed if len(clusters) > 3 else None]:
        ids = window.session.group_faces(GroupKey("cluster", g.id))
        folder = Counter(lib.face(f).photo_path.split("/")[0] for f in ids).most_common(1)[0][0]
        window.apply_name(GroupKey("cluster", g.id), folder.replace("_", " "))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--offscreen", action="store_true")
    parser.add_argument(
        "--skip-finetune", action="store_true", help="leave out the (slow) fine-tune screens"
    )
    args = parser.parse_args()
    if args.offscreen:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    relaunch_under_xvfb()
    if not FACES.is_dir():
        print(f"LFW not found at {LFW}; set FACEAPP_LFW")
        return 2

    wm = start_window_manager()
    work = Path(tempfile.mkdtemp(prefix="faceapp-shots-"))
    # The converted weights are reused from the app's normal cache (converting takes a while).
    from faceapp import config

    os.environ.setdefault("FACEAPP_WEIGHTS_CACHE", str(config.data_dir() / "weights"))
    os.environ["FACEAPP_DATA_DIR"] = str(work / "data")
    from PySide6.QtCore import QSettings, QTimer
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QApplication, QMessageBox

    for fmt in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
        QSettings.setPath(fmt, QSettings.Scope.UserScope, str(work / "settings"))
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)

    from faceapp.gui.app import create_app
    from faceapp.gui.main_window import MainWindow
    from faceapp.gui.mime import GroupKey
    from faceapp.logsetup import setup_logging

    setup_logging()  # as the app does: error details (Show Details…) come from the log
    app = create_app(["Face Album"])
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    def wait(predicate, timeout: float = 600) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            app.processEvents()
            if predicate():
                return
            time.sleep(0.01)
        raise TimeoutError("the app did not get there in time")

    def settle(seconds: float = 0.4) -> None:
        end = time.time() + seconds
        while time.time() < end:
            app.processEvents()
            time.sleep(0.01)

    def synced() -> None:
        """Library reads run in a worker: wait until the views show the latest state."""
        wait(lambda: not window.refreshing and not window.session.outlier_checks.running, 120)
        wait(lambda: window.thumbs.pending() == 0, 20)

    def shot(name: str, widget=None) -> None:
        settle()
        target = widget or window
        if app.platformName() == "xcb":  # the real pixels, title bar and dialogs included
            screen = QGuiApplication.primaryScreen()
            g = target.frameGeometry()
            image = screen.grabWindow(0, g.x(), g.y(), g.width(), g.height())
        else:
            image = target.grab()
        path = out / f"{name}.png"
        image.save(str(path))
        print("saved", path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)

    album = make_album(work / "Photos")
    window = MainWindow()
    window.resize(*SIZE)
    window.move(40, 40)
    window.show()
    wait(lambda: window.session.weights_info is not None or window.banner.isVisible(), 600)

    # 2. scanning
    window.open_folder(album)
    wait(lambda: window.session.scanning, 60)
    total = sum(ALBUM.values()) + 1
    wait(lambda: (p := window.session.last_progress) is not None and p.done >= total * 0.45)
    settle(1.3)  # one periodic refresh, so the grid shows the faces found so far
    shot("02-scanning")
    wait(lambda: not window.session.busy and not window.session.opening)
    synced()

    # Name the clusters after the LFW folders their faces come from (all but one).
    lib = window.session.lib
    name_clusters(window, lib_of=window.session, keep_unnamed=1)
    synced()
    people = {g.name: g for g in window.sidebar_model.groups() if g.kind == "person"}
    first = sorted(people)[0]
    window.sidebar.select_key(GroupKey("person", people[first].id))
    synced()
    shot("03-people")

    # 4. merge: a duplicate person (a few faces named differently), dropped onto the real one.
    from faceapp.engine import people as people_engine

    serena = people.get("Serena Williams") or next(iter(people.values()))
    faces = window.session.group_faces(GroupKey("person", serena.id))
    dup = people_engine.create_person(lib, "Serena W.", faces[:3]).person_id
    window.session.changed.emit()
    synced()
    source, target = GroupKey("person", dup), GroupKey("person", serena.id)
    window.sidebar.select_key(source)
    synced()
    window.sidebar.delegate.drop_target = window.sidebar_model.index(
        window.sidebar_model.row_of(target)
    )
    window.sidebar.viewport().update()

    def grab_and_confirm() -> None:
        shot("04-merge")
        box = QApplication.activeModalWidget()
        if isinstance(box, QMessageBox):
            box.button(QMessageBox.StandardButton.Yes).click()

    window.ask = lambda title, text: (
        QTimer.singleShot(700, grab_and_confirm),
        MainWindow.ask(window, title, text),
    )[1]
    window.request_merge(source, target)
    window.sidebar.delegate.drop_target = None
    window.ask = lambda title, text: True
    synced()

    # 5. review: three new photos of named people arrive (and a file that is not a
    # photo, for the Problems list); rescan; answer the queue.
    for person, index in LATER:
        photo = sorted((FACES / person).iterdir())[index]
        shutil.copy2(photo, album / person / photo.name)
    (album / "scanner-page-3.jpg").write_bytes(b"\xff\xd8 cut off while copying")
    window.act_rescan.trigger()
    wait(lambda: window.session.busy, 30)
    wait(lambda: not window.session.busy)
    synced()
    window.act_review.trigger()
    wait(lambda: window.review_view.loaded, 120)
    synced()
    shot("05-review")
    window.act_back.trigger()

    # 12. Problems: the files the scan could not use, with Try Again.
    problems = window.show_problems()
    problems.resize(760, 260)
    settle()
    shot("12-problems", problems)
    problems.close()

    # 13. Name faces: a selection becomes a new person (or joins one named before).
    from faceapp.gui.dialogs.name import NameDialog

    unknown = next((g for g in window.sidebar_model.groups() if g.kind == "unknown"), None)
    cluster = next((g for g in window.sidebar_model.groups() if g.kind == "cluster"), None)
    loose = unknown or cluster
    if loose is not None:
        window.sidebar.select_key(GroupKey.of(loose))
        synced()
        window.grid.selectAll()
        ids = window.grid.selected_face_ids()[:2]
        original_exec = NameDialog.exec

        def show_and_shoot(dialog: NameDialog) -> int:
            dialog.show()
            dialog.edit.setText("Aunt Maria")
            wait(lambda: dialog.face.image is not None, 20)  # the face, once decoded
            shot("13-name-faces", dialog)
            dialog.close()
            return NameDialog.DialogCode.Rejected

        NameDialog.exec = show_and_shoot
        window.name_faces_dialog(ids)
        NameDialog.exec = original_exec

    # 14. a person's Photos tab: by date, with the age once a birth date is set.
    from faceapp.engine import birthdays

    named = sorted(
        (g for g in window.sidebar_model.groups() if g.kind == "person"), key=lambda g: -g.count
    )
    birthdays.set_birth_date(lib, named[0].id, "1955-04-02")
    window.sidebar.select_key(GroupKey.of(named[0]))
    synced()
    window.grid_page.tabs.setCurrentIndex(window.grid_page.PHOTOS)
    wait(lambda: window.photo_grid.loaded and window.photo_grid.count() > 0, 60)
    shot("14-person-photos")
    # 15. two people selected: the photos they are in together.
    from PySide6.QtCore import QItemSelectionModel

    # Someone else in Colin Powell's group photo gets a name, so the two share a photo.
    in_group = [f for f in lib.faces() if f.photo_path.endswith(GROUP_PHOTO.name)]
    powell = next((g for g in named if g.name == "Colin Powell"), named[0])
    other = next((f for f in in_group if f.person_id != powell.id), None)
    if other is not None:
        window.name_faces([other.id], "Colleague")
        synced()
    colleague = next((g for g in window.sidebar_model.groups() if g.name == "Colleague"), None)
    together = [powell, colleague] if colleague is not None else named[:2]
    window.sidebar.select_key(GroupKey.of(together[0]))
    synced()
    index = window.sidebar_model.index(window.sidebar_model.row_of(GroupKey.of(together[1])))
    window.sidebar.selectionModel().select(index, QItemSelectionModel.SelectionFlag.Select)
    wait(lambda: window.photo_grid.loaded, 60)
    settle(1.0)
    shot("15-together")
    window.grid_page.tabs.setCurrentIndex(window.grid_page.FACES)

    # 6. photo view: the group photo, every face boxed and named.
    group = next(f for f in lib.faces() if f.photo_path.endswith(GROUP_PHOTO.name))
    window.show_photo(group.id)
    wait(lambda: window.photo_view.loaded, 30)
    shot("06-photo-view")
    window.act_back.trigger()

    # 7. verify: a group photo (the user clicked Colin Powell) against a portrait.
    dialog = window.show_verify()
    dialog.resize(1000, 700)
    dialog.set_photo(0, album / "Colin_Powell" / GROUP_PHOTO.name, group.box)
    dialog.set_photo(1, sorted((album / "Colin_Powell").iterdir())[1])
    wait(lambda: dialog.verdict is not None, 300)
    shot("07-verify", dialog)
    dialog.set_photo(1, sorted((album / "Hugo_Chavez").iterdir())[0])
    wait(lambda: dialog.verdict is not None, 300)
    shot("07b-verify-different", dialog)
    dialog.close()

    # 8. settings
    settings = window.make_settings_dialog()
    settings.show()
    settle()
    shot("08-settings", settings)
    settings.advanced_button.click()
    settle(1.0)
    shot("08b-settings-advanced", settings)
    settings.close()

    # 10. write face tags: the preview of what would be written; 11. export a person
    from faceapp.gui.dialogs.tags import ExportDialog, WriteTagsDialog

    tags = WriteTagsDialog(window.session.lib, None, window)
    tags.resize(640, 520)
    tags.show()
    tags.preview.click()
    wait(lambda: tags.result.isVisible(), 120)
    shot("10-write-tags", tags)
    tags.close()
    export = ExportDialog(window.session.lib, None, window)
    export.folder.setText("~/Pictures/" + export.person.currentText())
    export.show()
    shot("11-export", export)
    export.close()

    # 16. a damaged library (the last page of the file overwritten while it was closed):
    # on opening, the newest good backup is offered; "Restore Backup" puts it back.
    from faceapp.engine import backup

    path = Path(window.session.lib.path)
    window.session.lib.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    backup.make_backup(window.session.lib, "after-edits")
    window.close_library()
    settle(1.0)
    with open(path, "r+b") as f:
        f.seek(path.stat().st_size - 4096)
        f.write(os.urandom(4096))
    window.open_recent(window.settings.recent()[0])

    def restore_box() -> QMessageBox | None:
        found = [w for w in app.topLevelWidgets() if w.objectName() == "restoreBackupBox"]
        return next((w for w in found if w.isVisible()), None)

    wait(lambda: restore_box() is not None, 120)
    shot("16-restore", restore_box())
    restore_box().button(QMessageBox.StandardButton.Yes).click()
    wait(lambda: window.session.lib is not None, 120)
    wait(lambda: not window.session.busy and not window.session.opening)
    synced()

    if args.skip_finetune:
        window.close_library()
        settle()
        shot("01-welcome")
        window.close()
        return 0

    # 9. fine-tune: a second, larger album (16 people x 10 photos) so the held-out
    # measurement means something; named from the LFW folders, then a short run.
    big = work / "Team Photos"
    busy_people = sorted(d for d in FACES.iterdir() if d.is_dir() and len(list(d.iterdir())) >= 20)[
        :16
    ]
    for d in busy_people:
        (big / d.name).mkdir(parents=True, exist_ok=True)
        for photo in sorted(d.iterdir())[:10]:
            shutil.copy2(photo, big / d.name / photo.name)
    window.open_folder(big)
    wait(lambda: window.session.scanning, 60)
    wait(lambda: not window.session.busy and not window.session.opening)
    synced()
    name_clusters(window, lib_of=window.session, keep_unnamed=0)
    synced()
    ft = window.show_finetune()
    ft.resize(1040, 800)
    wait(lambda: ft.state != "planning", 300)
    ft.epochs.setValue(12)
    if ft.state == "ready":
        ft.start.click()
        wait(lambda: ft.state == "trained", 1800)
    shot("09-finetune", ft)

    # 10. model versions: the run is accepted (a new version, faces re-embedded and
    # regrouped); the Models dialog lists both versions with their held-out figures.
    ft.accept_result()
    wait(lambda: ft.state != "accepting", 1800)
    ft.close()
    synced()
    models = window.show_models()
    models.resize(980, 400)
    wait(lambda: models.table.rowCount() >= 2, 60)
    shot("10-models", models)
    models.close()

    # 1. welcome, with the album in the recent list.
    window.close_library()
    settle()
    shot("01-welcome")
    window.close()
    app.processEvents()
    shutil.rmtree(work, ignore_errors=True)
    if wm is not None:
        wm.terminate()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
