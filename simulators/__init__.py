"""The couriers' real wire APIs, simulated: lifecycles on a controllable clock, faults on demand, a
control API, proof-of-delivery artefacts. For the demo, tests, benchmarks and `courier simulate`;
production code never imports this package (an import-linter contract says so)."""

from __future__ import annotations
