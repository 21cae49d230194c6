"""Event streams: the SSE wire format, the per-process hub of open streams, the buses."""
