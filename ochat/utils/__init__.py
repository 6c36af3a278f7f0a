"""Plumbing every layer shares: atomic file writes, local ports, a served model in a subprocess,
the OpenAI-compatible HTTP client and the append-only logs that make long runs resumable."""
