"""Muon for the transformer's matrices, AdamW for the embedding and lm_head (nanochat's split).

Muon = SGD-momentum (Nesterov) whose update is orthogonalised by 5 Newton–Schulz steps; same-shape
matrices are stacked and orthogonalised in one batched call (compiled: ~170 -> ~70 ms/step at the
reference config, docs/explanation/cpu-training-speed.md). Distributed: the optimizers average gradients across ranks themselves,
so do NOT wrap the model in DDP. Muon shards its work (each rank orthogonalises ~1/world of the
matrices, then all-gathers them); gradients are reduce-scattered on nccl and all-reduced on gloo, which
lacks reduce_scatter for some dtypes (cost: 2× the reduce traffic on CPU clusters). AdamW state is
replicated on every rank (simple, and small next to the model at our sizes): no ZeRO sharding.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from nanochat_cli.model.precision import compile_or_eager, resolve_compile, resolve_dtype

# Quintic Newton–Schulz coefficients (Keller Jordan's Muon): chosen to maximise the slope at zero,
# so 5 steps push every singular value into ~[0.7, 1.2] (not exactly 1, which does not hurt training).
NS_COEFFS = (3.4445, -4.7750, 2.0315)


# Iterate on the Gram matrix when the long side is at least this many times the short side (below it
# the Gram form does more work: 4·m²n + 34·m³ against 20·m²n + 10·m³ FLOPs for 5 steps). The Gram form is
# the fp32 (CPU) path only: it was written and measured for CPUs without fast bf16, where Newton–Schulz runs
# in fp32; bf16 runs (GPUs, AVX512-BF16 CPUs) always take the plain form, as nanochat does.
GRAM_MIN_ASPECT = 2


def newton_schulz(G: torch.Tensor, steps: int) -> torch.Tensor:
    """Approximately orthogonalise each matrix of G (..., m, n): U·S'·V^T with S' ≈ 1."""
    tall = G.size(-2) > G.size(-1)
    X = G.mT if tall else G  # iterate on the wide side: X·X^T is the small Gram
    X = X / (X.norm(dim=(-2, -1), keepdim=True) + 1e-7)  # spectral norm <= Frobenius norm <= 1
    m, n = X.shape[-2:]
    if n >= GRAM_MIN_ASPECT * m and X.dtype in (torch.float32, torch.float64):
        X = _newton_schulz_gram(X, steps)
    else:
        X = _newton_schulz_direct(X, steps)
    return X.mT if tall else X


def _add_matmul(C: torch.Tensor, A: torch.Tensor, B: torch.Tensor, beta: float, alpha: float = 1.0) -> torch.Tensor:
    """beta·C + alpha·(A @ B) in one call, for single (2-D) or stacked (3-D) matrices."""
    fn = torch.baddbmm if A.dim() == 3 else torch.addmm
    return fn(C, A, B, beta=beta, alpha=alpha)


def _newton_schulz_direct(X: torch.Tensor, steps: int) -> torch.Tensor:
    """X ← a·X + (b·A + c·A²)·X with A = X·X^T, on wide X (m ≤ n): 6·m²n FLOPs a step."""
    a, b, c = NS_COEFFS
    for _ in range(steps):
        A = X @ X.mT
        B = _add_matmul(A, A, A, beta=b, alpha=c)
        X = _add_matmul(X, B, X, beta=a)
    return X


def _newton_schulz_gram(X: torch.Tensor, steps: int) -> torch.Tensor:
    """The same iteration carried out on m×m matrices, for X much wider than tall (the MLP's 4:1 matrices:
    ~45% fewer FLOPs). Every iterate is X_k = Q_k·X_0 with Q_k a polynomial in S = X_0·X_0^T, so Q_k and S
    commute and X_k·X_k^T = Q_k·S·Q_k; only the last step touches the long side again. In fp32 it agrees
    with the direct form to ~1e-4 relative (bf16 would drift, so bf16 keeps the direct form)."""
    a, b, c = NS_COEFFS
    S = X @ X.mT
    Q = None
    for _ in range(steps):
        A = S if Q is None else Q @ (S @ Q)
        B = _add_matmul(A, A, A, beta=b, alpha=c)
        if Q is None:  # Q_0 = I, so Q_1 = a·I + B
            Q = B + a * torch.eye(A.size(-1), dtype=A.dtype, device=A.device)
        else:
            Q = _add_matmul(Q, B, Q, beta=a)
    return X if Q is None else Q @ X


def muon_direction(grads, momentum_buffer, momentum, steps: int, ns_dtype: torch.dtype):
    """Nesterov momentum then orthogonalisation, on stacked (K, m, n) gradients. `momentum` is a 0-d
    tensor so a compiled version does not recompile while the momentum warms up."""
    momentum_buffer.lerp_(grads, 1 - momentum)
    g = grads.lerp(momentum_buffer, momentum)  # Nesterov: look ahead along the momentum
    return newton_schulz(g.to(ns_dtype), steps).to(grads.dtype)


def adamw_update(p, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay):
    """One decoupled-weight-decay Adam step, in place. Every hyper-parameter is a 0-d tensor: a Python
    float step count would recompile the compiled version each step and fall back to eager after 8."""
    p.mul_(1 - lr * weight_decay)
    exp_avg.lerp_(grad, 1 - beta1)
    exp_avg_sq.lerp_(grad.square(), 1 - beta2)
    bias1 = 1 - beta1 ** step
    bias2 = 1 - beta2 ** step
    denom = exp_avg_sq.sqrt() / bias2.sqrt() + eps
    p.sub_(exp_avg / denom * (lr / bias1))


def _world() -> tuple[int, int, str]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), dist.get_backend()
    return 0, 1, ""


class AdamW(torch.optim.Optimizer):
    """AdamW with gradients averaged over ranks (all_reduce works on nccl and gloo) and a compiled update."""

    def __init__(self, param_groups, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, compile=False):
        super().__init__(param_groups, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))
        self._update = compile_or_eager(adamw_update, compile, "the AdamW update", dynamic=False)
        # 0-d hyper-parameter holders, filled per group/param (see adamw_update for why tensors).
        self._hp = {k: torch.zeros((), dtype=torch.float32) for k in ("lr", "beta1", "beta2", "eps", "wd")}

    @torch.no_grad()
    def step(self):
        _, world, _ = _world()
        params = [p for g in self.param_groups for p in g["params"] if p.grad is not None]
        if world > 1:  # launch every all-reduce, then wait: they overlap with each other
            works = [dist.all_reduce(p.grad, op=dist.ReduceOp.SUM, async_op=True) for p in params]
            for w in works:
                w.wait()
            torch._foreach_div_([p.grad for p in params], world)
        hp = self._hp
        for group in self.param_groups:
            hp["lr"].fill_(group["lr"])
            hp["beta1"].fill_(group["betas"][0])
            hp["beta2"].fill_(group["betas"][1])
            hp["eps"].fill_(group["eps"])
            hp["wd"].fill_(group["weight_decay"])
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                # 0-d CPU tensors are fine alongside CUDA tensors (treated as scalars).
                self._update(p, p.grad, state["exp_avg"], state["exp_avg_sq"], state["step"],
                             hp["lr"], hp["beta1"], hp["beta2"], hp["eps"], hp["wd"])


class Muon(torch.optim.Optimizer):
    """Muon over groups of same-shape 2-D matrices; momentum warms up from `momentum_start` to `momentum`
    over `momentum_warmup` steps (nanochat: 0.85 -> 0.95 over 300). The step count lives in the
    optimizer state, so a resumed run continues the warm-up where it stopped."""

    def __init__(self, params, lr=0.02, momentum=0.95, momentum_start=0.85, momentum_warmup=300, ns_steps=5,
                 ns_dtype=torch.float32, compile=False):
        params = list(params)
        shapes = sorted({tuple(p.shape) for p in params})
        if any(len(s) != 2 for s in shapes):
            raise ValueError("Muon takes 2-D matrices only; give embeddings, heads and vectors to AdamW")
        # One group per shape: each is stacked into a (K, m, n) batch for one Newton–Schulz call.
        groups = [dict(params=[p for p in params if tuple(p.shape) == s]) for s in shapes]
        super().__init__(groups, dict(lr=lr, momentum=momentum, momentum_start=momentum_start,
                                      momentum_warmup=momentum_warmup, ns_steps=ns_steps))
        self.ns_dtype = ns_dtype
        self._direction = compile_or_eager(muon_direction, compile, "the Muon update", dynamic=False)
        self._momentum_t = torch.zeros((), dtype=torch.float32)

    def _momentum(self, group, step: int) -> float:
        frac = min(step / group["momentum_warmup"], 1.0) if group["momentum_warmup"] > 0 else 1.0
        return (1 - frac) * group["momentum_start"] + frac * group["momentum"]

    @torch.no_grad()
    def step(self):
        rank, world, backend = _world()
        for group in self.param_groups:
            params = group["params"]
            K, (m, n) = len(params), params[0].shape
            chunk = -(-K // world)  # matrices each rank orthogonalises
            start, owned = rank * chunk, max(0, min(chunk, K - rank * chunk))
            grads = torch.stack([p.grad for p in params])  # (K, m, n)
            if world > 1:
                grads = self._reduce(grads, chunk * world, chunk, rank, world, backend)  # (chunk, m, n) averaged
            else:
                start = 0
            state = self.state[params[0]]
            if not state:
                state["step"] = 0
                state["momentum_buffer"] = torch.zeros(chunk if world > 1 else K, m, n, dtype=params[0].dtype,
                                                       device=params[0].device)
            momentum = self._momentum(group, state["step"])
            state["step"] += 1
            self._momentum_t.fill_(momentum)
            # Scale so that tall matrices get steps of the same RMS as wide ones (nanochat).
            lr = group["lr"] * max(1.0, m / n) ** 0.5
            updated = None
            if owned > 0:
                own_params = params[start:start + owned]
                update = self._direction(grads[:owned], state["momentum_buffer"][:owned],
                                         self._momentum_t, group["ns_steps"], self.ns_dtype)
                torch._foreach_add_(own_params, list(update.unbind(0)), alpha=-lr)
                if world > 1:
                    updated = torch.stack(own_params)
            if world > 1:
                self._gather(params, updated, chunk, world, backend)

    def _reduce(self, grads, padded, chunk, rank, world, backend):
        """Sum-then-average the stacked grads, returning this rank's chunk."""
        K = grads.size(0)
        if padded > K:
            grads = torch.cat([grads, grads.new_zeros(padded - K, *grads.shape[1:])])
        if backend == "nccl":
            out = torch.empty(chunk, *grads.shape[1:], dtype=grads.dtype, device=grads.device)
            dist.reduce_scatter_tensor(out, grads, op=dist.ReduceOp.SUM)
        else:  # gloo: no reduce_scatter for every dtype; reduce everything, keep our slice
            dist.all_reduce(grads, op=dist.ReduceOp.SUM)
            out = grads[rank * chunk:(rank + 1) * chunk]
        return out / world

    def _gather(self, params, updated, chunk, world, backend):
        """Every rank receives every rank's updated matrices and copies them into its params."""
        K, shape = len(params), params[0].shape
        mine = params[0].new_zeros(chunk, *shape)
        if updated is not None:
            mine[:updated.size(0)] = updated
        if backend == "nccl":
            full = params[0].new_empty(chunk * world, *shape)
            dist.all_gather_into_tensor(full, mine)
        else:
            parts = [torch.empty_like(mine) for _ in range(world)]
            dist.all_gather(parts, mine)
            full = torch.cat(parts)
        torch._foreach_copy_(params, list(full[:K].unbind(0)))


def adamw_lr_scale(width: int) -> float:
    """nanochat tuned the AdamW learning rates at width 768 and scales them by (width/768)^-0.5."""
    return (width / 768) ** -0.5


def build_optimizers(model, cfg, world_size: int = 1) -> list[torch.optim.Optimizer]:
    """[Muon(block matrices), AdamW(lm_head, embedding)] with nanochat's learning rates; every param
    group carries `initial_lr` so a schedule sets lr = initial_lr × multiplier. With world_size > 1 call
    this after init_process_group: the optimizers then average the gradients (no DDP wrapper)."""
    if world_size > 1 and not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError("build_optimizers(world_size > 1) needs torch.distributed initialised first")
    t = cfg.train
    device = next(model.parameters()).device
    compile, _ = resolve_compile(cfg, device)
    dtype, _ = resolve_dtype(cfg, device)
    scale = adamw_lr_scale(model.config.n_embd)
    adamw = AdamW([
        dict(params=[model.lm_head.weight], lr=t.unembedding_lr * scale),
        dict(params=[model.transformer.wte.weight], lr=t.embedding_lr * scale),
    ], betas=(0.8, 0.95), eps=1e-10, weight_decay=t.weight_decay, compile=compile)
    # Newton–Schulz in bf16 where bf16 matmuls are fast: ~3% different from fp32, no visible loss change.
    muon = Muon(model.transformer.h.parameters(), lr=t.matrix_lr, momentum=0.95, ns_dtype=dtype,
                compile=compile)
    optimizers = [muon, adamw]
    for opt in optimizers:
        for group in opt.param_groups:
            group["initial_lr"] = group["lr"]
    return optimizers
