"""The Claude Code integration: transcripts, condensing a session for a subagent, the hook.

* :mod:`agentrt.claude.transcripts`: parse Claude Code's JSONL session transcripts;
* :mod:`agentrt.claude.condense`: condense a session to what a subagent's task needs;
* :mod:`agentrt.claude.hook`: handle one hook event (write the context, clean it up);
* :mod:`agentrt.claude.repo_context`: the hook's repository part (the task as a context query);
* :mod:`agentrt.claude.session_flag`: cc-sessions' subagent flag, under its lock;
* :mod:`agentrt.claude.install`: register the hook in a project's ``.claude/settings.json``.

The command line is :mod:`agentrt.cli.hook`. This package imports only ``agentrt.context`` and
``agentrt.errors``, and nothing here is imported eagerly: the hook runs in a fresh process for
every subagent.
"""
