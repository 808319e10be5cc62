"""`make chaos`: the service's processes under faults, kills and a database outage (issue 14).

Not part of the installed service (like bench/): run from the repository, `python -m chaos`."""
