"""The ``agentrt`` console script.

Claude Code runs ``agentrt hook`` before every subagent starts, so that one call is served
without importing the full CLI; everything else goes to :mod:`agentrt.flows.cli`.
"""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:] == ["hook"]:
        from agentrt.flows.claude_hooks import main as hook_main

        hook_main([])
        return
    from agentrt.flows.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
