"""Training recipe, runs, records and the sweep launcher."""
