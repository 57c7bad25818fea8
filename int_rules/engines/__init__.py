"""Evaluation engines compiled from the same rulebook: reference (Python), durable, duckdb."""
