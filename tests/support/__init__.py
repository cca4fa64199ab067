"""Test helpers shared across the suite (the replay server for archive clients)."""
