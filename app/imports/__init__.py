"""Bulk import and export of customers and managers (CSV or NDJSON, streamed)."""
