"""The remote side: opening a remote, its catalog, push, pull, verify and repair, remote
retention, and the periodic job that ties local and remote together."""
