"""Collectors: one module per source; each turns a server's answers into snapshots."""
