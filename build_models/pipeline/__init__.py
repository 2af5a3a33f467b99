"""build_models/pipeline."""
