"""How pytest-xdist hands cases to its workers in a parallel run.

The plugin orders the collection longest first (conformance.run.durations). xdist's own
load scheduling would give each worker a chunk of consecutive cases to begin with, so
the longest cases would start one after another on one worker. Here each worker begins
with one of the longest cases and one short one (a worker needs a case queued behind
the one it runs), and then takes one case at a time, the longest left, as it finishes.
"""

from typing import Any

import pytest
from xdist.scheduler import LoadScheduling  # type: ignore[import-untyped]


class LongestFirstScheduling(LoadScheduling):  # type: ignore[misc]
    def __init__(self, config: pytest.Config, log: Any | None = None) -> None:
        super().__init__(config, log)
        self.maxschedchunk = 1  # refills: one case at a time, from the front

    def schedule(self) -> None:
        # Once the collection is known, or with too few cases to pair, xdist's own way.
        collections: list[list[str]] = list(self.node2collection.values())
        known: list[str] | None = getattr(self, "collection", None)
        if known is not None or len(collections[0]) < 2 * len(self.nodes):
            super().schedule()
            return
        if not self._check_nodes_have_same_collection():
            self.log("**Different tests collected, aborting run**")
            return
        self.collection = collections[0]
        self.pending[:] = range(len(collections[0]))
        for node in self.nodes:
            longest, shortest = self.pending.pop(0), self.pending.pop()
            self._send_indices(node, [longest, shortest])
        if not self.pending:
            for node in self.nodes:
                node.shutdown()

    def _send_indices(self, node: Any, indices: list[int]) -> None:
        self.node2pending[node].extend(indices)
        node.send_runtest_some(indices)
