"""Core shared by every role of the clickstream platform.

The roles (``producer``, ``pipeline``, ``spark_jobs``, ``dashboards``) import this package
and never one another: settings, the click event, referrer classes, the store's tables and
queries, the server launcher and the ``clickstream`` command live here.
"""

__version__ = "0.1.0"
