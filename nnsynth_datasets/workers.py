"""Worker processes that never outlive the command that started them.

``nnsynth convert``, ``labelmaps`` and ``demo-cohort`` write cases from worker processes. When the
parent is killed (kill -9, an OOM kill, a closed terminal) nobody tells the workers, and they would go
on writing into a staging folder that no one will ever rename. Every worker therefore asks the kernel
to kill it when its parent dies (Linux ``PR_SET_PDEATHSIG``), and, where that is not available, a
watchdog thread exits the worker as soon as its parent process is gone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int, poll_seconds: float = 0.5) -> None:
    """Call first thing in a worker process (a pool initializer), with the pid of the process that started it.

    The parent's pid must come from the parent (``os.getpid()`` when the pool is made): a spawned worker
    imports for seconds before its initializer runs, and if the parent died meanwhile, ``os.getppid()``
    would already name init and the worker would take that for its parent and live on.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        except OSError:
            pass
    if os.getppid() != parent:  # the parent died before prctl took effect (or before this worker started)
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(poll_seconds)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="nnsynth-parent-watchdog", daemon=True).start()
