"""Store adapters: in memory for one process, Redis for many."""
