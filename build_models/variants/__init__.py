"""One module per variant; each registers itself with build_models.registry on import."""
