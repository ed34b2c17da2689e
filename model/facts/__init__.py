"""The typed facts collectors leave on a snapshot for rules to read, one module per engine or family."""
