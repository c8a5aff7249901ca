"""Remove Fast DDS shared-memory files left behind by processes that died without shutting down (SIGKILL, crash).

Fast DDS (the default rmw here) keeps one shared-memory port per participant and domain under /dev/shm. A process
killed with SIGKILL leaves its port, segments and named mutex behind, and a later participant that gets the same
port number (same domain and participant id: routine in tests, which reuse domains 1..100) can hang or spin on it
(eProsima/Fast-DDS#1144, #5053, #6501). eProsima's own `fastdds shm clean` is the cure; this is the same rule in a
few lines, so the demo, bringup and the tests run it before they start nodes and after they had to kill one:
a file is a zombie when its `_el`/`_sl` lock file is not locked by a living process (Fast DDS holds that flock
for as long as the owner lives), and only zombies are removed.
"""

from __future__ import annotations

import fcntl
import os
import re
from pathlib import Path

SHM_DIR = Path("/dev/shm")
_SEGMENT_LOCK = re.compile(r"^fastdds_[0-9a-z]{16}(_el|_sl)$")
_PORT_LOCK = re.compile(r"^fastdds_port\d{1,5}(_el|_sl)$")


def _locked(path: Path) -> bool:
    """True while a living process holds the file's flock (Fast DDS's 'owner alive' lock)."""
    try:
        with open(path, "ab") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except OSError:
        return True


def _remove(path: Path) -> bool:
    try:
        path.unlink()
        return True
    except OSError:
        return False


def clean_zombie_shm(shm_dir: Path = SHM_DIR) -> int:
    """Remove zombie Fast DDS ports and segments in `shm_dir`; returns how many ports + segments went."""
    try:
        names = os.listdir(shm_dir)
    except OSError:  # no /dev/shm (macOS, some containers): nothing of ours to clean
        return 0
    removed = 0
    for name in names:
        lock = shm_dir / name
        if _SEGMENT_LOCK.match(name) and not _locked(lock):
            removed += _remove(shm_dir / name[:-3])
            _remove(lock)
        elif _PORT_LOCK.match(name) and not _locked(lock):
            port = name[:-3]
            removed += _remove(shm_dir / port)
            _remove(shm_dir / f"sem.{port}_mutex")
            _remove(lock)
    return removed
