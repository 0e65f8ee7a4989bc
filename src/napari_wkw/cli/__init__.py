"""The ``napari-wkw`` command line: thin over ``napari_wkw.ops`` (and, later, conversions)."""

from .app import main

__all__ = ["main"]
