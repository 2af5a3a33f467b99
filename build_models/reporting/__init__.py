"""build_models/reporting."""
