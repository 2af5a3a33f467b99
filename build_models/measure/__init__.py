"""build_models/measure."""
