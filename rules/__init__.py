"""Rules: threshold rules and recommendation rules over snapshots, producing findings."""
