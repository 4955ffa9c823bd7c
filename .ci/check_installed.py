"""Run by .ci/wheel-check with the fresh venv's python, outside the source tree.

The installed app (not the checkout) must find its icons and style sheet, and the
GUI must load them.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import faceapp
from faceapp.gui.app import create_app
from faceapp.gui.resources import icon, resource_dir, style_sheet

package = Path(faceapp.__file__).resolve().parent
assert Path(sys.prefix) in package.parents, f"faceapp imported from {package}, not the venv"
base = resource_dir()
assert base == package / "resources", f"resources found at {base}, not inside the package"
icons = sorted((base / "icons").glob("*.svg"))
assert len(icons) >= 10, icons
app = create_app(["faceapp-check"])
assert app.styleSheet() == style_sheet() and "QPushButton" in style_sheet(), "style sheet"
blank = [p.stem for p in icons if icon(p.stem).pixmap(32, 32).isNull()]
assert not blank, f"icons that do not render: {blank}"
assert not app.windowIcon().isNull(), "application icon"
print(f"installed app: {len(icons)} icons and the style sheet load from {base}")
