"""Context manager: token counting, sources, relevance, compression, packing, store, budgets."""
