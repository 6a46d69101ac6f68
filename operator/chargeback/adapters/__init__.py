"""Adapters: the only code that does I/O (Prometheus, Kubernetes, the SQL ledger, metrics)."""
