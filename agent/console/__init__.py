"""The web console: server-rendered pages over what the agent holds in memory (docs/console.md)."""
