"""Screens of the main window: welcome, sidebar, face grid, photo view, review queue."""
