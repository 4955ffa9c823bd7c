"""Settings and fine-tune dialogs on the real engine."""

from __future__ import annotations

import pytest
from guihelpers import SCAN_TIMEOUT, groups, majority_names, open_and_wait, person

from faceapp.gui.dialogs.settings import SettingsDialog
from faceapp.gui.groups import GroupKey
from faceapp.gui.settings import AppSettings


def test_settings_dialog_saves_to_qsettings(qtbot, window):
    dialog = window.make_settings_dialog()
    qtbot.addWidget(dialog)
    dialog.device.setCurrentIndex(dialog.device.findData("cpu"))
    dialog.own_threshold.setChecked(True)
    dialog.threshold.setValue(0.95)
    dialog.rescan.setChecked(False)
    if dialog.cluster_widgets:
        name, (_kind, widget, default) = next(
            (n, v) for n, v in dialog.cluster_widgets.items() if v[0] is int
        )
        widget.setValue(int(default) + 1)
    changed = dialog.save()
    assert changed["engine"] and changed["threshold"]
    s = AppSettings()
    assert s.device == "cpu"
    assert s.threshold == pytest.approx(0.95)
    assert s.rescan_on_open is False
    if dialog.cluster_widgets:
        assert s.cluster_options == {name: int(default) + 1}
        assert window.session.cluster_params() is not None
    again = SettingsDialog(AppSettings())
    qtbot.addWidget(again)
    assert again.device.currentData() == "cpu"
    assert again.own_threshold.isChecked()


@pytest.mark.slow
def test_finetune_dialog_trains_and_discards_or_accepts(qtbot, window, scanned_library):
    _folder, library = scanned_library
    open_and_wait(qtbot, window, library=library)
    for cid, name in majority_names(window).items():
        if person(window, name) is None:
            assert window.apply_name(GroupKey("cluster", cid), name)
    qtbot.waitUntil(lambda: not window.refreshing and len(groups(window, "person")) >= 4)
    dialog = window.show_finetune()
    qtbot.waitUntil(lambda: dialog.state != "planning", timeout=120_000)
    assert dialog.state == "ready", dialog.plan_label.text()
    assert dialog.people_table.rowCount() >= 4
    dialog.epochs.setValue(2)
    with qtbot.waitSignal(dialog.trainingFinished, timeout=SCAN_TIMEOUT):
        dialog.start.click()
    assert dialog.state == "trained"
    assert dialog.chart.series["training loss"].points
    assert dialog.table.item(0, 0) is not None and dialog.table.item(0, 0).text() != "—"
    before_model = window.session.lib.active_model().id
    dialog.discard_button.click()
    assert dialog.state == "ready" and dialog.result is None
    assert window.session.lib.active_model().id == before_model
    # Train again and accept: a new model version becomes active.
    with qtbot.waitSignal(dialog.trainingFinished, timeout=SCAN_TIMEOUT):
        dialog.start.click()
    if dialog.result is None or dialog.result.state_dict is None:
        pytest.skip("training produced no model to accept")
    with qtbot.waitSignal(dialog.accepted_version, timeout=SCAN_TIMEOUT) as blocker:
        dialog.accept_button.click()
    assert blocker.args[0].activated
    assert window.session.lib.active_model().id != before_model
    qtbot.waitUntil(lambda: not window.session.busy, timeout=SCAN_TIMEOUT)
    dialog.close()


@pytest.mark.slow
def test_grouping_slider_moves_the_internals_and_regroups_by_itself(qtbot, window, scanned_library):
    from faceapp.engine.cluster import ClusterParams
    from faceapp.engine.grouping import grouping_params

    _folder, library = scanned_library
    open_and_wait(qtbot, window, library=library)
    dialog = window.make_settings_dialog()
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.grouping.value() == 0 and dialog.grouping_words.text().startswith("Balanced")
    assert not dialog.advanced.isVisible()  # the internals wait under "Advanced"
    dialog.advanced_button.click()
    assert dialog.advanced.isVisible()
    button = dialog.restore_defaults
    assert button.isVisible() and button.width() >= button.sizeHint().width()
    dialog.grouping.setValue(1)
    stricter = grouping_params(1)
    assert dialog.grouping_words.text().startswith("Stricter")
    trim = dialog.cluster_widgets["trim_ratio"][1]
    assert trim.value() == pytest.approx(stricter.trim_ratio)
    trim.setValue(0.123)  # a value of no level: the words say it is custom
    assert dialog.grouping_words.text().startswith("Custom")
    dialog.grouping.setValue(2)
    dialog.grouping.setValue(1)
    before = window.session.last_summary
    window.apply_settings(dialog)
    assert window.settings.cluster_options["trim_ratio"] == pytest.approx(stricter.trim_ratio)
    qtbot.waitUntil(lambda: window.session.last_summary is not before, timeout=120_000)
    qtbot.waitUntil(lambda: not window.session.busy, timeout=60_000)
    assert window.session.cluster_params().trim_ratio == pytest.approx(stricter.trim_ratio)
    button.click()
    assert dialog.grouping.value() == 0
    assert dialog.cluster_values() == {} and ClusterParams().trim_ratio == trim.value()
    assert not window.errors, window.errors


def test_a_birth_date_that_is_no_date_is_said_in_the_dialog(qtbot):
    """Typing 16/06/1970 closed Edit Person and then showed an error: the dialog says it
    and Save waits for a date."""
    from PySide6.QtWidgets import QDialogButtonBox

    from faceapp.gui.dialogs.name import NameDialog

    dialog = NameDialog("Edit Person", "Name and birth date", current="Anna", birth_date="")
    qtbot.addWidget(dialog)
    save = dialog.buttons.button(QDialogButtonBox.StandardButton.Ok)
    assert save.isEnabled() and dialog.note.text() == ""
    dialog.birth.setText("16/06/1970")
    assert not save.isEnabled()
    assert "YYYY-MM-DD" in dialog.note.text()
    dialog.birth.setText("1970-06-16")
    assert save.isEnabled() and dialog.note.text() == ""
    dialog.birth.clear()  # no birth date is fine too
    assert save.isEnabled()
