"""The YAML ruleset language: source loading with positions, schema models, and validation."""
