"""Collect run records and draw the roadmap staircase and table."""
