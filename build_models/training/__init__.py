"""build_models/training."""
