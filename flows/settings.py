"""Where agentrt keeps its state, and the Prefect settings it needs before Prefect loads.

Prefect reads settings when it is imported, so :func:`configure_prefect` must run before
the first ``import prefect``. Everything lives under ``AGENTRT_HOME`` (default
``./.agentrt``): Prefect's SQLite database and result storage (``prefect/``), the context
store (``context/``), run results (``runs/``) and metrics (``metrics/``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

__all__ = [
    "agentrt_home",
    "configure_prefect",
    "guard_embedded_server",
    "logs_dir",
    "metrics_dir",
    "route_prefect_logs",
    "runs_dir",
    "unroute_prefect_logs",
]


def agentrt_home() -> Path:
    return Path(os.environ.get("AGENTRT_HOME") or Path.cwd() / ".agentrt").resolve()


def runs_dir() -> Path:
    return agentrt_home() / "runs"


def logs_dir() -> Path:
    return agentrt_home() / "logs"


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


def route_prefect_logs(path: Path | None = None) -> Path:
    """Send what Prefect's logging would print on the console (warnings, errors and their
    tracebacks: a failing agent's, a Prefect server that stopped answering) to a file,
    ``logs/prefect.log`` under ``AGENTRT_HOME`` by default, and return its path.

    ``agentrt run`` calls it: its console shows the run's table and one line per problem.
    Every stream handler of the root logger and of Prefect's loggers is replaced by the
    file's (WARNING and up, secrets redacted, rotated at 5 MB); errors of logging handlers
    themselves are no longer printed (``logging.raiseExceptions``)."""
    import logging.handlers
    import sys

    from prefect import flow  # noqa: F401  (loading prefect.main sets Prefect's logging up)

    from agentrt.agents.redact import RedactingFilter

    path = path or logs_dir() / "prefect.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(
        path, maxBytes=5_000_000, backupCount=2, encoding="utf-8", delay=True
    )
    handler.setLevel(logging.WARNING)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s [%(threadName)s] %(name)s: %(message)s")
    )
    handler.addFilter(RedactingFilter())
    handler._agentrt_prefect_log = True  # type: ignore[attr-defined]
    for logger in _prefect_loggers():
        for h in [h for h in logger.handlers if getattr(h, "_agentrt_prefect_log", False)]:
            logger.removeHandler(h)  # an earlier call's (a second run in this process)
            h.close()
            logger.addHandler(handler)
        console = [
            h
            for h in logger.handlers
            if isinstance(h, logging.StreamHandler)
            and getattr(h, "stream", None) in (sys.stderr, sys.stdout, sys.__stderr__)
        ]
        for h in console:
            logger.removeHandler(h)
        if console:
            _routed.append((logger, console))
        if (console or logger is logging.getLogger()) and handler not in logger.handlers:
            logger.addHandler(handler)
    logging.raiseExceptions = False
    return path


#: The console handlers route_prefect_logs took off each logger (for unroute_prefect_logs).
_routed: list[tuple[logging.Logger, list[logging.Handler]]] = []


def _prefect_loggers() -> list[logging.Logger]:
    """The root logger and Prefect's (and its server's uvicorn's)."""
    return [logging.getLogger()] + [
        logger
        for name, logger in list(logging.Logger.manager.loggerDict.items())
        if isinstance(logger, logging.Logger) and name.split(".")[0] in ("prefect", "uvicorn")
    ]


def unroute_prefect_logs() -> None:
    """Undo :func:`route_prefect_logs` in this process (tests that run ``agentrt run``
    in-process give the next test Prefect's console logging back)."""
    for logger in _prefect_loggers():
        for h in [h for h in logger.handlers if getattr(h, "_agentrt_prefect_log", False)]:
            logger.removeHandler(h)
            h.close()
    while _routed:
        logger, handlers = _routed.pop()
        for h in handlers:
            logger.addHandler(h)
    logging.raiseExceptions = True
