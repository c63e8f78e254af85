"""Planning: a compiled ruleset, records and an instant give a plan."""

# Written into every plan header. Raise it whenever the same ruleset, data
# and instant could plan differently, so an audit can tell plans apart.
ENGINE_VERSION = "0.1.0"
