"""Two real flows in two processes, finishing together into one metrics folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from agentrt.flows.metrics import load_records

SCRIPT = Path(__file__).resolve().parent / "concurrent_flow.py"
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.usefixtures("prefect_harness")
def test_concurrent_flows_write_their_own_files(tmp_path: Path) -> None:
    from prefect.settings import PREFECT_API_URL

    root = tmp_path / "metrics"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "AGENTRT_METRICS_DIR": str(root),
        "AGENTRT_HOME": str(tmp_path / "home"),
    }
    meeting = tmp_path / "meeting"
    meeting.mkdir()
    procs = []
    for name in ("flow-one", "flow-two"):
        workdir = tmp_path / name
        workdir.mkdir()
        procs.append(
            subprocess.Popen(
                [sys.executable, str(SCRIPT), name, str(workdir), str(meeting)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outcomes = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-3000:]
        outcomes.append(json.loads(out.strip().splitlines()[-1]))
    one, two = outcomes
    # Each flow's `meet` step waited for the other's: the flows ran at the same time.
    assert one["met"] == two["met"] == {"met": ["flow-one", "flow-two"]}
    assert one["flow_run_id"] != two["flow_run_id"]
    files = sorted(p for p in (root / "runs").rglob("*") if p.is_file())
    assert sorted(p.name for p in files) == sorted(f"{o['flow_run_id']}.parquet" for o in outcomes)
    assert not list(root.glob("spool/*/*"))  # both spools consumed
    for outcome in outcomes:
        rows = pd.read_parquet(outcome["path"])
        assert set(rows["flow_run_id"]) == {outcome["flow_run_id"]}
        assert sorted(rows["step"]) == ["alpha", "flaky", "flaky", "meet"]
        assert rows["state"].value_counts().to_dict() == {"completed": 3, "failed": 1}
    everything = load_records(root)
    assert len(everything) == 8 and set(everything["workflow"]) == {"flow-one", "flow-two"}
