"""Events at the bottom of the house: a domain change writes the events it causes to the
outbox in its own transaction (``app.events.outbox``); the webhooks package delivers them."""
