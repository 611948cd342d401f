#!/usr/bin/env python
"""Measure authsvc beside its ceilings, in one run, on one machine (the package ``benchkit`` says how).

    python scripts/bench.py                  # the full run (about 8 minutes on 2 cores, all peers)
    python scripts/bench.py --smoke          # every code path, tiny counts (tests use it)
    python scripts/bench.py --database-url postgresql://user@host/scratch_db

``python scripts/bench.py --help`` lists the options; the results go to ``bench-results/``.
"""

import sys

from benchkit.cli import main

if __name__ == "__main__":
    sys.exit(main())
