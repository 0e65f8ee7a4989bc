"""napari-wkw: WKW (webknossos-wrap) datasets in napari and on the command line."""


def __getattr__(name: str):
    """``__version__``, looked up on first use: importlib.metadata costs 40 ms at every start
    of the command line otherwise."""
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        from importlib.metadata import version

        return version("napari-wkw")
    except Exception:  # pragma: no cover - running from a source tree
        return "0.0.0"
