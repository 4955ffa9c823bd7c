"""Typed access to the user's preferences (QSettings), so keys live in one place."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QSettings

ORGANIZATION = "FaceAlbum"
APPLICATION = "Face Album"
MAX_RECENT = 8


@dataclass(frozen=True)
class RecentLibrary:
    folder: str
    library: str


class AppSettings:
    """A thin wrapper over :class:`QSettings` with defaults and types.

    Each call opens QSettings afresh (cheap), so values written by one window or
    dialog are seen by the next without passing objects around.
    """

    def __init__(self) -> None:
        self._s = QSettings(ORGANIZATION, APPLICATION)

    def sync(self) -> None:
        self._s.sync()

    def _get_str(self, key: str, default: str = "") -> str:
        value = self._s.value(key, default)
        return default if value is None else str(value)

    def _get_bool(self, key: str, default: bool) -> bool:
        value = self._s.value(key, default)
        if isinstance(value, str):
            return value.lower() in {"1", "true", "yes", "on"}
        return bool(value)

    # -- engine ------------------------------------------------------------------------

    @property
    def device(self) -> str:
        value = self._get_str("engine/device", "auto").lower()
        return value if value in {"auto", "cpu", "cuda"} else "auto"

    @device.setter
    def device(self, value: str) -> None:
        self._s.setValue("engine/device", value)

    @property
    def weights_path(self) -> Path | None:
        value = self._get_str("engine/weights")
        return Path(value) if value else None

    @weights_path.setter
    def weights_path(self, value: Path | None) -> None:
        self._s.setValue("engine/weights", str(value) if value else "")

    @property
    def threshold(self) -> float | None:
        """A user override of the verification threshold (None: the model's calibrated one)."""
        value = self._get_str("engine/threshold")
        try:
            return float(value) if value else None
        except ValueError:
            return None

    @threshold.setter
    def threshold(self, value: float | None) -> None:
        self._s.setValue("engine/threshold", "" if value is None else f"{value:.4f}")

    @property
    def cluster_options(self) -> dict[str, object]:
        """Overrides for the engine's clustering parameters (empty: the engine defaults)."""
        try:
            value = json.loads(self._get_str("engine/cluster", "{}"))
        except json.JSONDecodeError:
            return {}
        return value if isinstance(value, dict) else {}

    @cluster_options.setter
    def cluster_options(self, value: dict[str, object]) -> None:
        self._s.setValue("engine/cluster", json.dumps(value, sort_keys=True))

    # -- libraries ---------------------------------------------------------------------

    @property
    def library_dir(self) -> Path | None:
        """Where new libraries are created (None: the app's data directory)."""
        value = self._get_str("library/dir")
        return Path(value) if value else None

    @library_dir.setter
    def library_dir(self, value: Path | None) -> None:
        self._s.setValue("library/dir", str(value) if value else "")

    @property
    def rescan_on_open(self) -> bool:
        return self._get_bool("library/rescan_on_open", True)

    @rescan_on_open.setter
    def rescan_on_open(self, value: bool) -> None:
        self._s.setValue("library/rescan_on_open", bool(value))

    def recent(self) -> list[RecentLibrary]:
        try:
            items = json.loads(self._get_str("library/recent", "[]"))
        except json.JSONDecodeError:
            return []
        out = []
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict) and item.get("folder") and item.get("library"):
                out.append(RecentLibrary(str(item["folder"]), str(item["library"])))
        return out

    def add_recent(self, folder: Path, library: Path) -> None:
        entry = RecentLibrary(str(folder), str(library))
        items = [entry] + [r for r in self.recent() if r.library != entry.library]
        self._s.setValue(
            "library/recent",
            json.dumps([r.__dict__ for r in items[:MAX_RECENT]]),
        )

    def remove_recent(self, library: str) -> None:
        items = [r for r in self.recent() if r.library != library]
        self._s.setValue("library/recent", json.dumps([r.__dict__ for r in items]))

    # -- look ----------------------------------------------------------------------------

    @property
    def thumb_size(self) -> int:
        try:
            return max(64, min(224, int(self._s.value("ui/thumb_size", 112))))
        except (TypeError, ValueError):
            return 112

    @thumb_size.setter
    def thumb_size(self, value: int) -> None:
        self._s.setValue("ui/thumb_size", int(value))

    def value(self, key: str, default: object = None) -> object:
        return self._s.value(key, default)

    def set_value(self, key: str, value: object) -> None:
        self._s.setValue(key, value)
