#!/usr/bin/env python3
"""Chaos soak of authsvc: two instances behind nginx, faults on a schedule, a ledger.

    python scripts/soak.py --minutes 5      # the CI mode
    python scripts/soak.py --minutes 60     # the release soak

Exits 0 only when the ledger is clean; writes ledger.json, summary.md and resources.png
to --out (default test-artifacts/soak/). Needs PostgreSQL's binaries, redis-server,
nginx, Node (``npm ci`` in scripts/soak_node) and authsvc[test]. See soakkit/.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from soakkit.runner import main

if __name__ == "__main__":
    raise SystemExit(main())
