"""Spark schemas of the archive (``clickstream.archive.CLICK_SCHEMA`` plus partitions) and
the Spark types of the store's CQL columns."""

from __future__ import annotations

from pyspark.sql import types as T

from clickstream.archive import CLICK_SCHEMA
from clickstream.store.tables import TABLES

_ARROW_TO_SPARK = {"int64": T.LongType(), "string": T.StringType(), "bool": T.BooleanType()}
CQL_TO_SPARK = {"text": T.StringType(), "bigint": T.LongType(), "int": T.IntegerType(),
                "double": T.DoubleType()}

CLICK_FIELDS = T.StructType([
    T.StructField(f.name, _ARROW_TO_SPARK[str(f.type)], nullable=f.nullable) for f in CLICK_SCHEMA
])
ARCHIVE_SCHEMA = T.StructType([
    *CLICK_FIELDS.fields,
    T.StructField("date", T.StringType(), nullable=False),
    T.StructField("hour", T.IntegerType(), nullable=False),
])


def table_schema(table_name: str) -> T.StructType:
    """The Spark schema of a store table's rows (column order as declared)."""
    return T.StructType([T.StructField(c.name, CQL_TO_SPARK[c.cql_type], nullable=False)
                         for c in TABLES[table_name].columns])
