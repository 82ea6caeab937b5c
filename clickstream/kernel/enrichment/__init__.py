"""Enrichment of the events: what the raw `user_agent`, `referrer` and landing URL say about
a visit (device, browser, bot or person, source, medium, campaign, channel). Pure functions
of the event's own fields, so the workers, the collector and the read side's views of old
raw hours all compute the same columns (issue 40)."""
