"""The command line: the click root, the application object, one module per command group,
the daemon loop and the demo."""
