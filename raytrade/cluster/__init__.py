"""Standing the system up: config, topology, the main job and the CLI."""
