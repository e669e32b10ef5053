"""Run by tests/test_distributed.py under torchrun: LastLayerInfluence on this rank's shard of the
same float64 data, all-reduced; each rank saves its s_val and the influence scores it computes."""

import sys

import torch

from infaug import LastLayerInfluence, distributed

out, method = sys.argv[1], sys.argv[2]
distributed.setup("cpu")
g = torch.Generator().manual_seed(0)
n, d, k, n_val = 301, 24, 5, 77  # odd sizes: the shards differ in length
train_h, train_y = torch.randn(n, d, generator=g, dtype=torch.float64), torch.randint(0, k, (n,), generator=g)
val_h, val_y = torch.randn(n_val, d, generator=g, dtype=torch.float64), torch.randint(0, k, (n_val,), generator=g)
weight, bias = 0.3 * torch.randn(k, d, generator=g, dtype=torch.float64), 0.1 * torch.randn(k, generator=g, dtype=torch.float64)
rows = distributed.shard(torch.arange(n))
val_rows = distributed.shard(torch.arange(n_val))
engine = LastLayerInfluence(weight, bias, damping=0.01, method=method, distributed=True)
# fit in two calls on this rank's rows, to check that the reduction sees every call
half = len(rows) // 2
engine.fit(train_h[rows[:half]], train_y[rows[:half]]).fit(train_h[rows[half:]], train_y[rows[half:]])
engine.set_validation(val_h[val_rows], val_y[val_rows])
hv = engine.hessian_vector_product(torch.ones(k, d + 1, dtype=torch.float64))
torch.save({"s_weight": engine.s_weight, "s_bias": engine.s_bias, "up": engine.up(train_h, train_y), "hv": hv,
            "solve_info": engine.solve_info, "rank": distributed.rank(), "world": distributed.world_size()},
           f"{out}/rank{distributed.rank()}.pt")
distributed.cleanup()
