"""napari wizards: thin forms over the core operations, one per operation.

Each is a magicgui ``Container`` (see ``wizard.py`` for the shape they share) listed in
``napari.yaml``; they import Qt and napari, the core never does.
"""
