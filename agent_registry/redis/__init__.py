"""Redis adapters, for several workers and hosts: agents, commands, presence and the bus."""
