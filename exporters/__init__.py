"""Exporters: Prometheus exposition and notification receivers."""
