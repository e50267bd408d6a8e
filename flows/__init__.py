"""Workflow manifests, the manifest-to-Prefect-flow compiler, metrics and the CLI."""
