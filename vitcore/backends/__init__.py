"""vitcore/backends."""
