"""Reading policies: YAML with positions, schema, expressions, types."""
