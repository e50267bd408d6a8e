"""Agent manifests, the agent registry and the built-in agents."""
