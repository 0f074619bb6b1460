"""The audit trail: who (API key) did what to which resource."""
