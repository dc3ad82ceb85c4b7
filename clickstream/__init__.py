"""Core shared by every role of the clickstream platform.

The roles (``producer``, ``pipeline``, ``spark_jobs``, ``dashboards``) import this package
and never one another; this package imports no role and not the entry layer ``launch``
(the ``clickstream`` command, the demo, the server launcher). It holds the settings, the
click event, windows and time constants, referrer classes, the archive layout, the
in-process topic, the store's tables and queries, and the fetched jars' layout.
"""

__version__ = "0.1.0"
