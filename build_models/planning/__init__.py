"""build_models/planning."""
