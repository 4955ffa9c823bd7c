"""``python -m faceapp.gui [PHOTO_FOLDER]``: the desktop app, as ``faceapp-gui`` starts it."""

from faceapp.gui.app import main

raise SystemExit(main())
