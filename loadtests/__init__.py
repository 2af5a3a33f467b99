"""Locust load tests for the vitserve service (loopback only)."""
