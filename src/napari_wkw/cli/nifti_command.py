"""The `nifti` command (filled in by the conversion work of issue 5)."""
