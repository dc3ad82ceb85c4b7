"""Bokeh directory app entry: one call per browser session (``bokeh serve`` runs it)."""

from bokeh.io import curdoc

from dashboards.app import build_document
from dashboards.runtime import runtime_of

doc = curdoc()
build_document(doc, runtime_of(doc))
