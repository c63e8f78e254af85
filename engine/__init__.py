"""Planning: a compiled ruleset, records and an instant give a plan."""
