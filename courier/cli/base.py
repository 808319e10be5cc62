"""What every command shares: loading the configuration and reporting its errors."""

from __future__ import annotations

import argparse
import sys

from courier import config, logging


def settings_from(args: argparse.Namespace) -> config.Settings:
    """Load the configuration named by ``--config`` (or COURIER_CONFIG / ./courier.toml) and
    start logging; exit 2 with every bad key listed when it is wrong."""
    try:
        settings = config.load(getattr(args, "config", None))
    except config.ConfigError as err:
        print(f"configuration error in {err.source}:", file=sys.stderr)
        for e in err.errors:
            print(f"  {e.path}: {e.message}", file=sys.stderr)
        raise SystemExit(2) from err
    logging.configure(settings.log_level, settings.log_format)
    return settings
