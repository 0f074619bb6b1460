"""Outbound webhooks: subscriptions, the delivery log and the dispatcher."""
