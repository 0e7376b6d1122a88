"""Fixtures for the moto_server test server (to be written)."""
