"""Whether a process still runs, for the records that name one (jobs, running episodes), and how
many workers one evaluation may start."""

from __future__ import annotations

import os
from pathlib import Path

#: the most episodes one evaluation or optimization plays in parallel (``--workers``, the jobs form);
#: here, not in automem.runs, so cli.py can use it at import time without loading the runs layer
MAX_WORKERS = 256


def process_alive(pid: int, *, cmdline_has: bytes | None = None) -> bool:
    """True when ``pid`` runs on this host and is not a zombie; with ``cmdline_has``, only when its
    command line holds those bytes too (a pid the system reused for another program is not ours)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # another user's process: the pid was reused
    proc = Path(f"/proc/{pid}")
    if not proc.is_dir():
        return True  # no /proc (macOS): the signal check is all we have
    try:
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        cmdline = (proc / "cmdline").read_bytes()
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X") and (cmdline_has is None or cmdline_has in cmdline)
