"""The chaos soak behind ``scripts/soak.py``: one job per module.

config     the compressed timetable, rates and the fault schedule's shape
services   the soak's own PostgreSQL cluster and Redis server
proxy      Debian's nginx in front of the two instances
launch     the real CLI entry, with the clock offset read from a file (one skewed instance)
instances  ``authsvc serve --workers 2`` processes, the CLI, the two rotate_keys.py "hosts"
procs      /proc readers: children, RSS, descriptors; the sampler
clients    the workload through the proxy: logins, refresh chains, revocations...
verifiers  authsvc.verifier, PyJWT's PyJWKClient and panva jose (Node) verifying offline
faults     the schedule and the injectors
ledger     what happened, and the rules a clean run passes
report     the JSON ledger, the markdown summary and the PNG plot (plot.py draws it)
runner     puts it together
"""
