"""Background threads' CPU priority: the frame loop comes first."""
from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger("face-edge.threads")


def lower_thread_priority(nice: int) -> bool:
    """Raise the calling thread's niceness by ``nice`` (on Linux ``setpriority`` with a thread id
    affects that thread only); return False where that is not possible (the thread runs as is)."""
    if not nice or not hasattr(os, "setpriority"):
        return False
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + nice)
    except OSError as exc:
        log.debug("%s keeps its priority: %s", threading.current_thread().name, exc)
        return False
    return True
