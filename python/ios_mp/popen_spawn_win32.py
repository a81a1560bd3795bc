"""``multiprocessing.popen_spawn_win32``: importable, as in every stdlib; Windows
only there, and never used here (no process is ever spawned)."""

__all__: list[str] = []
