"""Pure decisions, no I/O: the seed's file names, retention, and what a push sends.

Everything here is tested exhaustively (hypothesis) and imports nothing else of ours."""
