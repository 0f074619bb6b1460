"""Webhooks: inbound CRM events (adapters, signatures, inbox) and outbound events (subscriptions,
transactional outbox, signed delivery with retries)."""
