"""Revenue facts: money customers brought, attributed to their owner through the ledger."""
