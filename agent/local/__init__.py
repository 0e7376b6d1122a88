"""The local side: the models dir, its catalog and hash cache, backups, restores, local
retention, and the lock. Never imports the remote side."""
