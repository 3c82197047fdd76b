"""Where each training row comes from, so a part can tell an original from its augmented versions.

Every training row carries five integer columns, which the collator passes on and the harness hands the
parts as `Batch.origins`:

- `origin_id`: the original example's row in the training set (an original's own row);
- `origin_source`: which source made the row, an index into `TrainingContext.sources` (0: the training set
  itself, then each pool, by its method's name);
- `origin_side`: the sentence the augmentation changed (0 the first, 1 the second of a pair; -1: none);
- `origin_copy`: which of the original's versions of that side it is (1, 2, ...; 0 for an original);
- `origin_operation`: which of its source's operations made it (EDA's edit: an index into
  `TrainingContext.operations[source]`; 0 where the source is one operation, and for an original).

A selector (Glitter's, issue 28) groups the candidates of one original by `origin_id`, the learned
augmentation policy its operations by source and operation; a record counts the rows of each source.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import datasets
import torch

ORIGIN_ID, ORIGIN_SOURCE, ORIGIN_SIDE, ORIGIN_COPY = "origin_id", "origin_source", "origin_side", "origin_copy"
ORIGIN_OPERATION = "origin_operation"
ORIGIN_COLUMNS = (ORIGIN_ID, ORIGIN_SOURCE, ORIGIN_SIDE, ORIGIN_COPY, ORIGIN_OPERATION)
ORIGINAL = "original"  # the source name of the training set's own rows (source 0)
NO_SIDE = -1  # an original's side: nothing was changed


@dataclass
class Origins:
    """The origin of each row of a batch (see the module's docstring), one long tensor per column."""

    ids: torch.Tensor
    sources: torch.Tensor
    sides: torch.Tensor
    copies: torch.Tensor
    operations: torch.Tensor

    @classmethod
    def pop(cls, inputs: dict[str, torch.Tensor]) -> Origins | None:
        """The origins a collated batch carries, taken out of `inputs` (which then holds model inputs
        only); None when its rows have none (evaluation sets)."""
        if ORIGIN_ID not in inputs:
            return None
        return cls(*(inputs.pop(column) for column in ORIGIN_COLUMNS))

    def originals(self) -> torch.Tensor:
        """Which rows are originals (a boolean mask)."""
        return self.sources == 0


def with_origins(ds: datasets.Dataset, *, source: int, origins: Mapping[str, list[int]] | None = None) -> datasets.Dataset:
    """`ds` with its rows' origin columns: `origins` (`origin_id`, `origin_side`, `origin_copy` and, where the
    source has several operations, `origin_operation`, one value per row, as a pool gives them) from `source`,
    or, without them, the rows as originals of themselves."""
    n = len(ds)
    given = origins or {ORIGIN_ID: list(range(n)), ORIGIN_SIDE: [NO_SIDE] * n, ORIGIN_COPY: [0] * n}
    columns = {ORIGIN_ID: given[ORIGIN_ID], ORIGIN_SOURCE: [source] * n, ORIGIN_SIDE: given[ORIGIN_SIDE],
               ORIGIN_COPY: given[ORIGIN_COPY], ORIGIN_OPERATION: given.get(ORIGIN_OPERATION, [0] * n)}
    for column in ORIGIN_COLUMNS:
        ds = ds.add_column(column, columns[column], feature=datasets.Value("int64"))
    return ds


def rows_by_source(ds: datasets.Dataset, sources: tuple[str, ...]) -> dict[str, int]:
    """How many rows of `ds` each source made, by name, in the order of `sources`."""
    counts = torch.bincount(torch.tensor(ds[ORIGIN_SOURCE], dtype=torch.long), minlength=len(sources))
    return {name: int(count) for name, count in zip(sources, counts)}
