"""Shared fixtures. Real servers live in tests/servers/ as pytest plugins, one module each, so
that provider conformance tests and agent end-to-end tests start the same real servers."""

pytest_plugins = [
    "tests.servers.seaweed",
    "tests.servers.moto_server",
    "tests.servers.drive",
    "tests.servers.proxy",
]
