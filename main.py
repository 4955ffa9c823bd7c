"""Start Face Album's desktop app: ``python main.py [PHOTO_FOLDER]``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from faceapp.gui.app import main

if __name__ == "__main__":
    raise SystemExit(main())
