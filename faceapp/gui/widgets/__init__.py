"""Small reusable widgets: banner, scan panel, photo canvas, chart."""
