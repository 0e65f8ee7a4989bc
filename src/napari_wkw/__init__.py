"""napari-wkw: WKW (webknossos-wrap) datasets in napari and on the command line."""

try:
    from importlib.metadata import version as _version

    __version__ = _version("napari-wkw")
except Exception:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"
