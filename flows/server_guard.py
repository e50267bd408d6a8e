"""Run Prefect's embedded API server and stop it when the process that started it dies.

Prefect starts its embedded server (uvicorn, SQLite) as a subprocess and stops it in an
``atexit`` hook, which never runs when ``agentrt run`` is killed (SIGKILL, the OOM
killer): the server would live on, holding its port and database. Started through this
module instead, the server watches its parent and shuts down once the parent is gone.

    python -m agentrt.flows.server_guard PARENT_PID UVICORN_ARGS...

``PR_SET_PDEATHSIG`` is not used: it fires when the *thread* that started the child exits,
and Prefect may start the server from a short-lived thread.
"""

from __future__ import annotations

import os
import runpy
import signal
import sys
import threading
import time

__all__ = ["guard_command", "main", "stop_self"]

#: How often the server checks that its parent is alive, and how long it then has to stop.
POLL_SECONDS = 0.25
GRACE_SECONDS = 1.0


def guard_command(uvicorn_args: list[str], parent: int | None = None) -> list[str]:
    """The command that runs ``python -m uvicorn UVICORN_ARGS`` under the guard."""
    return [sys.executable, "-m", __name__, str(parent or os.getpid()), *uvicorn_args]


def stop_self(grace: float = GRACE_SECONDS) -> None:
    """Stop this server process: uvicorn's graceful shutdown, then an exit after ``grace``
    seconds whatever it is doing (also used by :mod:`agentrt.flows.local_server`)."""
    os.kill(os.getpid(), signal.SIGTERM)  # uvicorn's graceful shutdown first
    time.sleep(grace)
    os._exit(0)  # SQLite keeps its journal consistent on an abrupt exit


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(POLL_SECONDS)
    stop_self()


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or not args[0].isdigit():
        sys.exit("usage: python -m agentrt.flows.server_guard PARENT_PID UVICORN_ARGS...")
    parent = int(args.pop(0))
    threading.Thread(target=_watch, args=(parent,), name="parent-watch", daemon=True).start()
    sys.argv = ["uvicorn", *args]
    runpy.run_module("uvicorn", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
