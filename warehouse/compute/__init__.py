"""Running the heavy steps on a Dask cluster, split by HEALPix partition.

* :mod:`.cluster`: which scheduler (``--dask`` > ``$GWH_DASK_SCHEDULER`` > ``[compute] dask``;
  ``none`` for this machine alone) and a client on it (``local:N`` starts a local cluster of N
  worker processes);
* :mod:`.mapping`: a function mapped over partitions on the workers, results back in
  partition order with a bounded number of tasks in flight;
* :mod:`.partitions`: the partition reader, the ``sql/`` views over one partition plus its
  margin, exact for every row of the partition (spec-z groups checked against the margin).

Workers read the warehouse's files directly, so they must see it at the same path (a shared
filesystem, as hats-import assumes) and have galaxy-warehouse installed.
"""

from warehouse.compute.cluster import ENV_VAR, NO_DASK, dask_client, resolve_address
from warehouse.compute.mapping import map_in_order
from warehouse.compute.partitions import (
    PartitionPlan,
    check_groups,
    open_partition,
    partition_files,
    partition_reader,
    partition_rows,
    plan_partitions,
    view_rows,
)

__all__ = [
    "ENV_VAR",
    "NO_DASK",
    "PartitionPlan",
    "check_groups",
    "dask_client",
    "map_in_order",
    "open_partition",
    "partition_files",
    "partition_reader",
    "partition_rows",
    "plan_partitions",
    "resolve_address",
    "view_rows",
]
