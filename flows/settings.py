"""Where agentrt keeps its state, and the Prefect settings it needs before Prefect loads.

Prefect reads settings when it is imported, so :func:`configure_prefect` must run before
the first ``import prefect``. Everything lives under ``AGENTRT_HOME`` (default
``./.agentrt``): Prefect's SQLite database and result storage (``prefect/``), the context
store (``context/``), run results (``runs/``) and metrics (``metrics/``).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["agentrt_home", "configure_prefect", "metrics_dir", "runs_dir"]


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
