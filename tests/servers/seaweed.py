"""Fixtures for the seaweed test server (to be written)."""
