"""The cost room: what can be measured about a network, how it is asked for, what comes back.

    COSTS / list_costs()   one table: name, unit, label, how it is measured, direction
    CostRequest            the settings of the step that will actually run (clip, classes,
                           batch, gradient accumulation, optimizer, precision, device,
                           latency timing); ``CostRequest.for_training(config)``
    measure_costs(spec, request, names) -> CostRow   one frozen row back, with the input
                           it was measured at and how each figure was obtained

Search, expansion, ``harness compile`` and the dashboard read this table; none keeps its
own list of cost names. Importing this package loads neither torch nor Optuna (the
dashboard reads the table); :func:`measure_costs` imports the measurement code on call.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from harness.costs._request import CostRequest, CostRow, LatencyTiming, format_shape
from harness.costs._table import (
    COSTS,
    TRAINED,
    Cost,
    CostName,
    get_cost,
    is_cost,
    list_costs,
    parse_cost,
)

if TYPE_CHECKING:
    from harness.measure import CostCache
    from harness.spec import ModelSpec
    from harness.spec.localization import LocalizationSpec

__all__ = [
    "COSTS",
    "TRAINED",
    "Cost",
    "CostName",
    "CostRequest",
    "CostRow",
    "LatencyTiming",
    "format_shape",
    "get_cost",
    "is_cost",
    "list_costs",
    "measure_costs",
    "parse_cost",
]


def measure_costs(
    spec: ModelSpec | LocalizationSpec | str,
    request: CostRequest,
    names: Iterable[str] = (),
    *,
    cache: CostCache | None = None,
) -> CostRow:
    """The costs of ``spec`` under ``request`` (see :mod:`harness.costs._measure`): a
    recognizer's per clip, a localizer's per window of feature steps."""
    from harness.costs._measure import measure_costs as measure

    return measure(spec, request, names, cache=cache)
