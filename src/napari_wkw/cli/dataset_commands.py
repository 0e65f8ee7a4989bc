"""Commands that write datasets: downsample, compress, recube."""

from __future__ import annotations

import click  # noqa: F401

from .app import main  # noqa: F401
