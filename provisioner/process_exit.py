"""End the `provision` process without the interpreter's teardown.

After a deploy, Python's own exit (clearing every module, collecting the objects paramiko,
cryptography, jinja2 and rich left) is ~0.15-0.19 s of CPU with no system call in it: measured
on a 1-host no-op that took ~0.9 s in all (docs/performance.md). Nothing of provision's needs that
teardown: the output streams are flushed and the atexit handlers run here, then the process ends.
If a thread that is not a daemon is still running (it would keep a normal exit waiting), the
normal exit is taken.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading


def exit_process(code: int) -> None:
    """Flush, run atexit handlers, end with `code` (never returns)."""
    others = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon and t.is_alive()]
    if others:
        sys.exit(code)
    atexit._run_exitfuncs()  # what a normal exit runs first (underscored, but in every Python 3)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`provision ... | head`) or stream: nothing to say
            pass
    os._exit(code)
