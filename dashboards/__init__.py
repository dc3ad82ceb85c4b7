"""The Bokeh live dashboard: a directory app (``clickstream_app``) over ``clickstream.store``."""
