"""build_models/sources."""
