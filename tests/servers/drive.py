"""Fixtures for the drive test server (to be written)."""
