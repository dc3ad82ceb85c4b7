"""Spark batch jobs over the Parquet click archive: batch tables, PageRank, reconciliation.

One spark-submit entry point per job (``batch.py``, ``pagerank.py``, ``reconcile.py``);
the ``clickstream batch|pagerank|reconcile`` subcommands run the same code locally.
This package imports ``clickstream`` and no other role.
"""
