"""PageRank on a weighted directed graph given as index arrays (pure, numpy + scipy.sparse).

The iteration is networkx's (``networkx.pagerank``), vectorised:

    x' = d * (x @ W + (sum of x over dangling nodes) * u) + (1 - d) * p

where ``W`` is the adjacency matrix with each row divided by the row's total weight (so a
source's rank flows to its destinations in proportion to clicks), ``u`` is the dangling
distribution (uniform by default) and ``p`` the teleport (personalization) distribution
(uniform by default). It stops when ``sum(|x' - x|) < n * tol`` (networkx's test) or after
``max_iter`` iterations, whichever comes first; unlike networkx it returns the
unconverged vector with ``converged=False`` instead of raising.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

DEFAULT_DAMPING = 0.85
DEFAULT_TOL = 1e-10
DEFAULT_MAX_ITER = 200


@dataclass(frozen=True)
class PageRankResult:
    scores: np.ndarray  # float64, sums to 1
    iterations: int
    converged: bool


def transition_matrix(src: np.ndarray, dst: np.ndarray, weight: np.ndarray, n_nodes: int
                      ) -> tuple[sp.csr_matrix, np.ndarray]:
    """(row-normalised sparse matrix, boolean mask of dangling nodes).

    Duplicate (src, dst) pairs are summed. Rows of nodes without out-weight stay empty and
    are flagged dangling. Raises ValueError on negative weights or out-of-range indices.
    """
    src = np.asarray(src, dtype=np.int64)
    dst = np.asarray(dst, dtype=np.int64)
    weight = np.asarray(weight, dtype=np.float64)
    if not (len(src) == len(dst) == len(weight)):
        raise ValueError("src, dst and weight must have the same length")
    if len(weight) and weight.min() < 0:
        raise ValueError("edge weights must be non-negative")
    if len(src) and (min(src.min(), dst.min()) < 0 or max(src.max(), dst.max()) >= n_nodes):
        raise ValueError(f"edge indices must lie in [0, {n_nodes})")
    matrix = sp.csr_matrix((weight, (src, dst)), shape=(n_nodes, n_nodes), dtype=np.float64)
    matrix.sum_duplicates()
    out_weight = np.asarray(matrix.sum(axis=1)).ravel()
    dangling = out_weight == 0
    inverse = np.zeros(n_nodes, dtype=np.float64)
    inverse[~dangling] = 1.0 / out_weight[~dangling]
    return sp.csr_matrix(sp.diags(inverse) @ matrix), dangling


def _distribution(vector: np.ndarray | None, n_nodes: int, name: str) -> np.ndarray:
    if vector is None:
        return np.full(n_nodes, 1.0 / n_nodes)
    vector = np.asarray(vector, dtype=np.float64)
    if vector.shape != (n_nodes,) or vector.min() < 0 or vector.sum() <= 0:
        raise ValueError(f"{name}: expected {n_nodes} non-negative values with a positive sum")
    return vector / vector.sum()


def pagerank(src: np.ndarray, dst: np.ndarray, weight: np.ndarray, n_nodes: int, *,
             damping: float = DEFAULT_DAMPING, tol: float = DEFAULT_TOL,
             max_iter: int = DEFAULT_MAX_ITER, personalization: np.ndarray | None = None,
             dangling: np.ndarray | None = None) -> PageRankResult:
    """PageRank scores of nodes ``0..n_nodes-1`` (see the module docstring for the maths)."""
    if n_nodes == 0:
        return PageRankResult(np.zeros(0), 0, True)
    if not 0 <= damping < 1:
        raise ValueError(f"damping: {damping} is not in [0, 1)")
    matrix, dangling_mask = transition_matrix(src, dst, weight, n_nodes)
    return power_iteration(matrix, dangling_mask, damping=damping, tol=tol, max_iter=max_iter,
                           personalization=_distribution(personalization, n_nodes, "personalization"),
                           dangling=_distribution(dangling, n_nodes, "dangling"))


def power_iteration(matrix: sp.csr_matrix, dangling_mask: np.ndarray, *, damping: float, tol: float,
                    max_iter: int, personalization: np.ndarray, dangling: np.ndarray
                    ) -> PageRankResult:
    """The iteration itself on a prepared row-stochastic matrix (rows of dangling nodes empty)."""
    n_nodes = matrix.shape[0]
    transposed = sp.csr_matrix(matrix.T)  # x @ W as W^T @ x: a CSR mat-vec, the fast path
    x = np.full(n_nodes, 1.0 / n_nodes)
    teleport = (1.0 - damping) * personalization
    for iteration in range(1, max_iter + 1):
        previous = x
        x = damping * (transposed @ previous + previous[dangling_mask].sum() * dangling) + teleport
        if np.abs(x - previous).sum() < n_nodes * tol:
            return PageRankResult(x, iteration, True)
    return PageRankResult(x, max_iter, False)


def top_n(scores: np.ndarray, titles: np.ndarray, n: int) -> list[tuple[int, str, float]]:
    """[(rank from 1, title, score)] of the n best scores; ties by title ascending."""
    order = np.lexsort((titles, -scores))[:n]
    return [(i + 1, str(titles[j]), float(scores[j])) for i, j in enumerate(order)]


OTHER_EXCLUDE = "exclude"
OTHER_TELEPORT = "teleport"
OTHER_MODES = (OTHER_EXCLUDE, OTHER_TELEPORT)


@dataclass(frozen=True)
class ClickGraph:
    """A click graph with node indices: ``titles[i]`` is node i."""

    titles: np.ndarray  # object array of str
    src: np.ndarray
    dst: np.ndarray
    weight: np.ndarray
    personalization: np.ndarray | None  # teleport distribution (unnormalised), or uniform

    @property
    def n_nodes(self) -> int:
        return len(self.titles)

    @property
    def n_edges(self) -> int:
        return len(self.src)


def build_graph(prev: np.ndarray, curr: np.ndarray, clicks: np.ndarray, *, weighted: bool = True,
                other: str = OTHER_EXCLUDE, other_prefix: str = "other-") -> ClickGraph:
    """The click graph of aggregated edges (one row per distinct prev -> curr).

    - ``weighted``: an edge's weight is its clicks; otherwise 1 (the 2017 platform's variant).
    - ``other='exclude'``: ``other-*`` referrers are not nodes and their edges are dropped;
      nodes are the endpoints of article -> article edges.
    - ``other='teleport'``: ``other-*`` referrers are not nodes either, but the clicks they
      send into each article become the teleport distribution (where a random surfer
      arriving from outside lands); their destinations are nodes even without article links.
      With no such clicks at all the teleport is uniform.
    """
    if other not in OTHER_MODES:
        raise ValueError(f"other: {other!r} is not one of {OTHER_MODES}")
    prev = np.asarray(prev, dtype=object)
    curr = np.asarray(curr, dtype=object)
    clicks = np.asarray(clicks, dtype=np.float64)
    from_other = np.fromiter((p.startswith(other_prefix) for p in prev), dtype=bool, count=len(prev))
    article = ~from_other
    endpoints = [prev[article], curr[article]]
    if other == OTHER_TELEPORT:
        endpoints.append(curr[from_other])
    import pandas as pd

    codes, titles = pd.factorize(np.concatenate(endpoints), sort=True)
    n_article = int(article.sum())
    src, dst = codes[:n_article], codes[n_article:2 * n_article]
    weight = clicks[article] if weighted else np.ones(n_article)
    personalization = None
    if other == OTHER_TELEPORT and from_other.any():
        personalization = np.bincount(codes[2 * n_article:], weights=clicks[from_other],
                                      minlength=len(titles)).astype(np.float64)
    return ClickGraph(np.asarray(titles, dtype=object), src.astype(np.int64), dst.astype(np.int64),
                      weight.astype(np.float64), personalization)


def graph_pagerank(graph: ClickGraph, *, damping: float = DEFAULT_DAMPING, tol: float = DEFAULT_TOL,
                   max_iter: int = DEFAULT_MAX_ITER) -> PageRankResult:
    """PageRank of a click graph; dangling mass is spread uniformly over all nodes."""
    uniform = np.full(graph.n_nodes, 1.0) if graph.n_nodes else None
    return pagerank(graph.src, graph.dst, graph.weight, graph.n_nodes, damping=damping, tol=tol,
                    max_iter=max_iter, personalization=graph.personalization, dangling=uniform)
