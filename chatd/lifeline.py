"""Child processes end when the process that started them dies, even by SIGKILL.

A supervisor killed with SIGKILL (the OOM killer's way) runs no cleanup: without this, its
workers would live on under init, holding the port and the data dir's lock, and answering
``/readyz`` 503 forever. Linux delivers a chosen signal to a child when its parent dies
(``PR_SET_PDEATHSIG``); a worker given SIGTERM closes its sockets with 1012, and its clients
resume on another process.
"""

from __future__ import annotations

import ctypes
import os
import signal

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int, sig: int = signal.SIGTERM) -> None:
    """In a child just forked from ``parent``: receive ``sig`` when ``parent`` dies. If it died
    before this call (a race the kernel cannot see), the signal is sent at once."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, sig)
    except OSError:  # not glibc Linux: nothing to bind to
        return
    if os.getppid() != parent:
        os.kill(os.getpid(), sig)
