"""Outside every allowed import root: importing it would leave a canary file behind."""

import os
from pathlib import Path

Path(os.environ.get("AGENTRT_CANARY_DIR", "."), "agentrt-canary-import").write_text(__name__)


def run(inputs: object) -> dict:
    return {}
