"""`courier`, the command line: one module per command, each with ``register(subparsers)``.

This package is the composition root: the only place in ``courier/`` that builds the whole system
from its parts, and so the only place that may import ``worker/`` (its ``work`` and ``demo``
commands).
"""

from __future__ import annotations

from courier.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
