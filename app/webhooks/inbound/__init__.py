"""Inbound webhooks: sources, signature adapters, the inbox and event processing."""
