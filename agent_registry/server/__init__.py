"""The server process: the app factory, its runtime, gunicorn settings and worker, the scheduler."""
