"""Audit records, logging (metrics and tracing come with their own issues)."""
