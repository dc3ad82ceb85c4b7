"""Where the fetched jars live: the layout of ``settings.services_home_path``.

``clickstream services fetch`` (``launch.services``) writes this cache and Spark
(``spark_jobs.session``) reads it; both take the paths from here, so neither imports the
other:

- ``<services_home>/<name>/lib/``: the jars of a server or Spark plugin resolved from
  ``clickstream/services/<name>/pom.xml``, with a ``.fetched`` stamp holding the pom's hash;
- ``<services_home>/spark-ivy/``: Spark's Ivy cache of the Cassandra connector.

The poms and the servers' config files (``SERVICES_DIR``) are package data of this
package (``pyproject.toml``), so an installed wheel finds them next to this file just as a
checkout does.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from clickstream.settings import Settings

SERVICES_DIR = Path(__file__).resolve().parent / "services"  # poms and configs, package data
REPO_SERVICES_DIR = SERVICES_DIR  # its former name, as launch.services imports it
CASSANDRA_CONNECTOR = "com.datastax.spark:spark-cassandra-connector_2.12:3.5.1"
COMET_JAR_GLOB = "comet-spark-spark3.5_2.12-*.jar"  # the version: clickstream/services/comet/pom.xml
FETCHED_STAMP = ".fetched"


def lib_dir(settings: Settings, name: str) -> Path:
    """The jars of server or plugin ``name`` (``kafka``, ``cassandra``, ``hdfs``, ``comet``)."""
    return settings.services_home_path / name / "lib"


def pom_hash(name: str) -> str:
    """SHA-256 of ``services/<name>/pom.xml``: a fetch is current while its stamp holds it."""
    return hashlib.sha256((SERVICES_DIR / name / "pom.xml").read_bytes()).hexdigest()


def is_fetched(settings: Settings, name: str) -> bool:
    """True when ``name``'s jars were fetched from the current pom."""
    stamp = lib_dir(settings, name) / FETCHED_STAMP
    return stamp.exists() and stamp.read_text().strip() == pom_hash(name)


def comet_jar(settings: Settings) -> Path | None:
    """Comet's jar as ``clickstream services fetch comet`` left it, or None if not fetched."""
    if not is_fetched(settings, "comet"):
        return None
    jars = sorted(lib_dir(settings, "comet").glob(COMET_JAR_GLOB))
    return jars[-1] if jars else None


def ivy_dir(settings: Settings) -> Path:
    """Where Spark's Ivy keeps the resolved connector jars (cached between runs)."""
    return settings.services_home_path / "spark-ivy"


def cached_connector_jars(settings: Settings) -> list[Path]:
    """The Cassandra connector and its dependencies from an earlier resolution, or [] if absent."""
    jars_dir = ivy_dir(settings) / "jars"
    group, artifact, version = CASSANDRA_CONNECTOR.split(":")
    if not (jars_dir / f"{group}_{artifact}-{version}.jar").is_file():
        return []
    return sorted(jars_dir.glob("*.jar"))
