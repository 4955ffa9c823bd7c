"""The desktop application (PySide6).

Split like MusicBrainz Picard: ``session``, ``workers``, ``models`` and
``thumbnails`` are the Qt-side core (no widgets beyond what they
need); ``views``, ``dialogs`` and ``widgets`` are the user interface. Everything
that changes or computes faces goes through :mod:`faceapp.engine`; the GUI
never re-implements it.
"""

from faceapp.gui.compat import protect_singletons

protect_singletons()  # before any widget exists: see compat.py
