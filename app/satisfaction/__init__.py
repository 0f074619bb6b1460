"""Customer satisfaction as a time series (surveys, CRM webhooks)."""
