"""The composition root: operator settings, and the one place that builds the object graph.

The CLI commands and the kopf handlers call :mod:`chargeback.app.root`; nothing else
constructs Prometheus clients, ledgers, collectors or reconcilers.
"""
