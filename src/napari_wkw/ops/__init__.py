"""Dataset operations (headless): each takes ``jobs``, ``progress`` and ``cancel``.

The ``napari-wkw`` command line and the napari wizards call exactly these functions.
"""
