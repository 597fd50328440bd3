"""Experiment configs: `get_config(arg)` in each file; `base.py` holds the shared defaults."""
