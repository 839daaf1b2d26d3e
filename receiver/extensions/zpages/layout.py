"""Where the service map draws each node: a layered (Sugiyama-style) layout computed by networkx.

Callers on the left, what they call on the right: the layers are the topological generations of
the graph's condensation (a cycle of services shares one layer), ordered within a layer by the
barycenter of their callers (one sweep, fewer crossings), and placed by networkx's
``multipartite_layout``.  The result depends only on the set of nodes and edges, so it is cached
(:class:`LayoutCache`): a refresh of an unchanged map costs no layout.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


NODE_SPACING = 46.0  # px between nodes of one layer
LAYER_SPACING = 260.0  # px between layers
MARGIN = 90.0


@dataclass(frozen=True, slots=True)
class Layout:
    positions: dict  # node -> (x, y) in px
    width: float
    height: float
    layers: int


def layered_layout(nodes: list[str], edges: list[tuple[str, str]]) -> Layout:
    import networkx as nx  # ~20 MB and 60 ms: loaded when a map is first drawn, not by every agent

    g = nx.DiGraph()
    g.add_nodes_from(nodes)
    g.add_edges_from((a, b) for a, b in edges if a != b)
    if not g:
        return Layout({}, 2 * MARGIN, 2 * MARGIN, 0)
    cond = nx.condensation(g)
    layer_of: dict[str, int] = {}
    for depth, generation in enumerate(nx.topological_generations(cond)):
        for component in generation:
            for n in cond.nodes[component]["members"]:
                layer_of[n] = depth
    by_layer: dict[int, list[str]] = {}
    for n in sorted(g, key=str):
        by_layer.setdefault(layer_of[n], []).append(n)
    rank: dict[str, float] = {}
    for depth in sorted(by_layer):
        members = by_layer[depth]
        first = {n: float(i) for i, n in enumerate(members)}

        def barycenter(n: str, first=first) -> tuple[float, str]:
            ranks = [rank[p] for p in g.predecessors(n) if p in rank]
            return (sum(ranks) / len(ranks) if ranks else first[n], str(n))

        members.sort(key=barycenter)
        for i, n in enumerate(members):
            rank[n] = float(i)
    ordered = nx.DiGraph()
    for depth in sorted(by_layer):
        for n in by_layer[depth]:
            ordered.add_node(n, layer=depth)
    raw = nx.multipartite_layout(ordered, subset_key="layer", align="vertical", scale=1.0)
    tallest = max(len(m) for m in by_layer.values())
    layers = len(by_layer)
    width = 2 * MARGIN + LAYER_SPACING * max(layers - 1, 0)
    height = 2 * MARGIN + NODE_SPACING * max(tallest - 1, 0)
    xs = [p[0] for p in raw.values()]
    ys = [p[1] for p in raw.values()]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    positions = {}
    for n, (x, y) in raw.items():
        px = MARGIN + (x - x0) / (x1 - x0) * (width - 2 * MARGIN) if x1 > x0 else width / 2
        py = MARGIN + (y - y0) / (y1 - y0) * (height - 2 * MARGIN) if y1 > y0 else height / 2
        positions[n] = (float(px), float(py))
    return Layout(positions, width, height, layers)


class LayoutCache:
    """The last layout, again while the nodes and edges are the same."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple | None = None
        self._layout: Layout | None = None
        self.computed = 0

    def get(self, nodes: list[str], edges: list[tuple[str, str]]) -> Layout:
        key = (tuple(sorted(nodes)), tuple(sorted(edges)))
        with self._lock:
            if key == self._key and self._layout is not None:
                return self._layout
        layout = layered_layout(nodes, edges)
        with self._lock:
            self._key, self._layout = key, layout
            self.computed += 1
        return layout
