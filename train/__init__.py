"""Distillation: losses, the jitted step, checkpoints and the training loop."""
