"""The producer role: read (or synthesise) clickstream dumps, expand rows into clicks,
and replay them into Kafka or an in-process ``MemoryTopic``.

Modules: ``readers`` (both dump layouts, streaming), ``synthetic`` (generated months),
``expand`` (rows -> clicks in event-time order), ``sender`` (Kafka / memory sinks).
"""
