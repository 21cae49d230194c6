"""The operators' command line: serve, agents, send, commands, simulate; rendering and waiting."""
