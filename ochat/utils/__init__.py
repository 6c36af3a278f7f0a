"""Plumbing every layer shares: atomic file writes, local ports, a served model in a subprocess,
and the OpenAI-compatible HTTP client."""
