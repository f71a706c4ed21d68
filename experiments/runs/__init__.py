"""A run on disk: its records, states, lock, file writes and the scheduler's word on its job."""
