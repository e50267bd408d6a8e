"""Where agentrt keeps its state, and the Prefect settings it needs before Prefect loads.

Prefect reads settings when it is imported, so :func:`configure_prefect` must run before
the first ``import prefect``. Everything lives under ``AGENTRT_HOME`` (default
``./.agentrt``): Prefect's SQLite database and result storage (``prefect/``), the context
store (``context/``), run results (``runs/``) and metrics (``metrics/``).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["agentrt_home", "configure_prefect", "guard_embedded_server", "metrics_dir", "runs_dir"]


def agentrt_home() -> Path:
    return Path(os.environ.get("AGENTRT_HOME") or Path.cwd() / ".agentrt").resolve()


def runs_dir() -> Path:
    return agentrt_home() / "runs"


def metrics_dir() -> Path:
    return Path(os.environ.get("AGENTRT_METRICS_DIR") or agentrt_home() / "metrics")


def configure_prefect(*, quiet: bool = True) -> None:
    """Defaults for an embedded run: no server, no analytics, state under AGENTRT_HOME.

    Values already in the environment win, so ``PREFECT_API_URL`` points runs at a real
    server and ``PREFECT_HOME`` can be moved.
    """
    home = agentrt_home()
    os.environ.setdefault("PREFECT_HOME", str(home / "prefect"))
    Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # Results must be persisted for the cross-run cache to work.
    os.environ.setdefault("PREFECT_RESULTS_PERSIST_BY_DEFAULT", "true")
    if quiet:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
        os.environ.setdefault("PREFECT_LOGGING_SERVER_LEVEL", "WARNING")
        os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")


#: Settings of the embedded server agentrt starts (values in the environment win). Its
#: task-run recorder writes every task-run event in a transaction of its own by default,
#: and `agentrt run` waits for a run's history before it exits (flows/history.py): batches
#: of 50, flushed at least every second (Prefect truncates the interval to whole seconds),
#: let the history of a wide run land sooner on SQLite.
EMBEDDED_SERVER_DEFAULTS = {
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "50",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "1",
}


def guard_embedded_server() -> None:
    """Make Prefect's embedded server stop when this process dies, even by SIGKILL.

    Only in embedded mode (no ``PREFECT_API_URL``): Prefect's own command for the server
    (uvicorn) is run through :mod:`agentrt.flows.server_guard`, with
    :data:`EMBEDDED_SERVER_DEFAULTS` under the environment. This replaces a private method of
    Prefect's (:func:`agentrt.flows.prefect_compat.guard_embedded_server_command`), which
    raises ``PrefectCompatError`` if Prefect no longer has it.
    """
    from prefect.settings import get_current_settings

    if get_current_settings().api.url:  # a real server (environment or Prefect profile)
        return
    from agentrt.flows.prefect_compat import guard_embedded_server_command
    from agentrt.flows.server_guard import guard_command

    guard_embedded_server_command(guard_command, EMBEDDED_SERVER_DEFAULTS)
