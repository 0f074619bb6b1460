"""Use cases that span domains: each calls the domains' services in one transaction, so no
domain reaches sideways into another."""
