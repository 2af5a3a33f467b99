"""service/middleware."""
