"""Command-line tools around the model zoo (checkpoint conversion)."""
