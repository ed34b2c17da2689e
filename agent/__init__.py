"""The daemon: command line, configuration, scheduling, state and the HTTP endpoints."""

__version__ = "0.1.0"
