"""One module per variant; each registers itself with vitcore.catalogue on import."""
