"""The ``napari-wkw`` command line: thin over ``napari_wkw.convert`` and ``napari_wkw.ops``."""

from .app import main

__all__ = ["main"]
