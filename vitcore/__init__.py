"""vitcore."""
