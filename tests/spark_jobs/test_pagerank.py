"""PageRank: the pure power iteration against networkx, and the Spark job end to end."""

from __future__ import annotations

import csv
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from clickstream.settings import Settings
from clickstream.store import open_store
from spark_jobs.pagerank_math import ClickGraph, build_graph, graph_pagerank, pagerank, top_n

TOL = 1e-12


def _networkx_scores(graph: ClickGraph, weighted: bool = True, damping: float = 0.85) -> np.ndarray:
    g = nx.DiGraph()
    g.add_nodes_from(graph.titles)
    g.add_weighted_edges_from(zip(graph.titles[graph.src], graph.titles[graph.dst], graph.weight,
                                  strict=True))
    personalization = (None if graph.personalization is None
                       else dict(zip(graph.titles, graph.personalization, strict=True)))
    ranks = nx.pagerank(g, alpha=damping, tol=TOL, max_iter=2000, personalization=personalization,
                        dangling=dict.fromkeys(graph.titles, 1.0), weight="weight" if weighted else None)
    return np.array([ranks[t] for t in graph.titles])


def _assert_agrees(graph: ClickGraph, weighted: bool = True, damping: float = 0.85) -> None:
    result = graph_pagerank(graph, damping=damping, tol=TOL, max_iter=2000)
    assert result.converged
    assert abs(result.scores.sum() - 1.0) < 1e-12
    assert np.abs(result.scores - _networkx_scores(graph, weighted, damping)).sum() < 1e-9


def _random_edges(seed: int, n_nodes: int = 300, n_edges: int = 2000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    titles = np.array([f"T{i}" for i in range(n_nodes)] + ["other-search", "other-empty"], dtype=object)
    # Only the first 250 nodes have out-links: 50 articles are dangling.
    frame = pd.DataFrame({"prev": titles[rng.integers(0, 250, n_edges)],
                          "curr": titles[rng.integers(0, n_nodes, n_edges)],
                          "clicks": rng.integers(1, 1000, n_edges)})
    frame.loc[: n_edges // 10, "prev"] = titles[rng.integers(n_nodes, n_nodes + 2, n_edges // 10 + 1)]
    return frame.groupby(["prev", "curr"], as_index=False)["clicks"].sum()


@pytest.mark.parametrize("other", ["exclude", "teleport"])
@pytest.mark.parametrize("weighted", [True, False])
def test_generated_graph_agrees_with_networkx(other: str, weighted: bool) -> None:
    edges = _random_edges(seed=3)
    graph = build_graph(edges["prev"].to_numpy(), edges["curr"].to_numpy(), edges["clicks"].to_numpy(),
                        weighted=weighted, other=other)
    assert not any(t.startswith("other-") for t in graph.titles)
    assert (np.bincount(graph.src, minlength=graph.n_nodes) == 0).any(), "the graph must have dangling nodes"
    assert (graph.personalization is not None) == (other == "teleport")
    _assert_agrees(graph, weighted)


def test_default_ranks_outside_arrivals_as_teleport_like_networkx() -> None:
    """The job's default: arrivals from outside (other-*) are the teleport weight, so an
    article reached only from outside is ranked; checked against networkx with the outside
    arrivals, counted here from the edges, as its personalization."""
    from spark_jobs.pagerank import DEFAULT_OTHER, variant_name

    edges = pd.DataFrame([("other-empty", "Main_Page", 100), ("other-search", "A", 50), ("A", "B", 10),
                          ("B", "A", 5), ("B", "C", 3), ("other-external", "D", 7), ("other-search", "A", 4)],
                         columns=["prev", "curr", "clicks"]).groupby(["prev", "curr"], as_index=False).sum()
    graph = build_graph(edges["prev"].to_numpy(), edges["curr"].to_numpy(), edges["clicks"].to_numpy(),
                        other=DEFAULT_OTHER)
    result = graph_pagerank(graph, tol=TOL, max_iter=2000)
    assert sorted(graph.titles) == ["A", "B", "C", "D", "Main_Page"]  # D and Main_Page: outside only

    g = nx.DiGraph()
    g.add_nodes_from(["A", "B", "C", "D", "Main_Page"])
    g.add_weighted_edges_from([("A", "B", 10), ("B", "A", 5), ("B", "C", 3)])
    outside = {"A": 54, "B": 0, "C": 0, "D": 7, "Main_Page": 100}
    want = nx.pagerank(g, alpha=0.85, tol=TOL, max_iter=2000, personalization=outside,
                       dangling=dict.fromkeys(g, 1.0), weight="weight")
    got = dict(zip(graph.titles, result.scores, strict=True))
    assert sum(abs(got[t] - want[t]) for t in want) < 1e-9
    assert got["Main_Page"] > got["D"] > 0  # ranked though no article links to them
    assert variant_name(True, DEFAULT_OTHER) == "weighted"
    assert variant_name(False, "exclude") == "unweighted-exclude"


def test_damping_and_iteration_cap() -> None:
    edges = _random_edges(seed=4)
    graph = build_graph(edges["prev"].to_numpy(), edges["curr"].to_numpy(), edges["clicks"].to_numpy())
    _assert_agrees(graph, damping=0.6)
    capped = graph_pagerank(graph, tol=TOL, max_iter=3)
    assert (capped.iterations, capped.converged) == (3, False)


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="indices"):
        pagerank(np.array([0]), np.array([5]), np.array([1.0]), 2)
    with pytest.raises(ValueError, match="non-negative"):
        pagerank(np.array([0]), np.array([1]), np.array([-1.0]), 2)
    with pytest.raises(ValueError, match="other"):
        build_graph(np.array(["a"]), np.array(["b"]), np.array([1]), other="keep")


def test_top_n_breaks_ties_by_title() -> None:
    scores = np.array([0.2, 0.4, 0.2, 0.2])
    titles = np.array(["c", "z", "a", "b"], dtype=object)
    assert top_n(scores, titles, 3) == [(1, "z", 0.4), (2, "a", 0.2), (3, "b", 0.2)]


def _read_2015(path: Path) -> pd.DataFrame:
    rows = []
    with path.open(encoding="utf-8") as fh:
        header = fh.readline().rstrip("\n").split("\t")
        col = {name: i for i, name in enumerate(header)}
        for line in fh:
            parts = line.rstrip("\n").split("\t")
            rows.append((parts[col["prev_title"]], parts[col["curr_title"]], int(parts[col["n"]])))
    return pd.DataFrame(rows, columns=["prev", "curr", "clicks"])


def _read_2024(path: Path) -> pd.DataFrame:
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        col = {name: i for i, name in enumerate(header)}
        rows = [(r[col["prev"]], r[col["curr"]], int(r[col["n"]])) for r in reader]
    return pd.DataFrame(rows, columns=["prev", "curr", "clicks"])


@pytest.mark.parametrize(("name", "reader"), [("clickstream-enwiki-2015-02_head10k.tsv", _read_2015),
                                              ("clickstream-enwiki-2024-10_sample10k.csv", _read_2024)])
@pytest.mark.parametrize("other", ["exclude", "teleport"])
def test_real_sample_agrees_with_networkx(shared_data_dir: Path, name: str, reader: object,
                                          other: str) -> None:
    rows = reader(shared_data_dir / name)  # type: ignore[operator]
    assert len(rows) > 9000
    edges = rows.groupby(["prev", "curr"], as_index=False)["clicks"].sum()
    graph = build_graph(edges["prev"].to_numpy(), edges["curr"].to_numpy(), edges["clicks"].to_numpy(),
                        other=other)
    assert graph.n_nodes > 1000
    _assert_agrees(graph)


@pytest.mark.integration
def test_job_writes_ranks_matching_networkx(spark: object, embedded_settings: Settings,
                                            shared_archive: Path, shared_clicks: pd.DataFrame) -> None:
    from spark_jobs.pagerank import run_pagerank
    from spark_jobs.source import HourRange

    clicks = shared_clicks
    url = shared_archive.as_uri()
    runs = run_pagerank(spark, embedded_settings, url, HourRange(), tol=TOL, max_iter=2000, top=10,
                        run_date="2015-03-01")
    assert [r.variant for r in runs] == ["weighted", "unweighted"]
    edges = clicks.groupby(["prev", "curr"]).size().rename("clicks").reset_index()
    store = open_store(embedded_settings)
    try:
        for run, weighted in zip(runs, (True, False), strict=True):
            graph = build_graph(edges["prev"].to_numpy(), edges["curr"].to_numpy(),
                                edges["clicks"].to_numpy(), weighted=weighted, other="teleport")
            expected = pd.Series(_networkx_scores(graph, weighted), index=graph.titles)
            ranks_dir = shared_archive / "pagerank" / "run_date=2015-03-01" / f"variant={run.variant}"
            written = pd.read_parquet(ranks_dir).set_index("title")["score"]
            assert set(written.index) == set(expected.index)
            assert np.abs(written.reindex(expected.index).to_numpy() - expected.to_numpy()).sum() < 1e-9
            top = store.select("pagerank_top", {"run_date": "2015-03-01", "variant": run.variant})
            assert [row["title"] for row in top] == [t for _, t, _ in top_n(expected.to_numpy(),
                                                                            graph.titles, 10)]
            [meta] = store.select("pagerank_runs", {"variant": run.variant}, start="2015-03-01",
                                  end="2015-03-02")
            assert (meta["nodes"], meta["edges"], meta["converged"]) == (graph.n_nodes, graph.n_edges, 1)
    finally:
        store.close()
