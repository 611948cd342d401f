#!/usr/bin/env python3
"""Rotate authsvc's signing keys as the timetable says; safe every minute from cron.

Keys only: expired sessions and tokens are pruned by ``authsvc db prune`` (its
own timer), and stored grace responses by every server as their grace ends.

Exit codes: 0 done (one line printed per change, nothing when nothing was due),
1 error (one line on stderr: missing or empty store, lock held over 60 s,
unwritable store, an AUTHSVC_KEY_PASSPHRASE that does not open the keys, bad
setting), 2 usage. ``--dry-run`` prints the plan and changes nothing (it checks
the passphrase too); ``--force`` publishes a successor now unless one is
pending (with ``AUTHSVC_KEY_STANDBY`` the standby is promoted and replaced).
"""

from __future__ import annotations

import sys

if __name__ == "__main__":
    try:
        from authsvc.cli_keys import cron_main
    except ImportError:
        sys.stderr.write("rotate_keys: install 'authsvc[server]'\n")
        raise SystemExit(1) from None
    raise SystemExit(cron_main())
