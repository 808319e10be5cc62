"""One module per `courier` sub-command; each exposes ``register(subparsers)``."""
