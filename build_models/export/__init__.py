"""build_models/export."""
