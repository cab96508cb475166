"""The benchmark workloads. Each function is written once against a NumPy-like namespace
``xp``: ``autodiff.numpy`` (which runs MLX eagerly on mx.arrays, so the very same function
object is what ``mx.grad`` differentiates) or ``jax.numpy``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import mlx.core as mx
import numpy as np

import autodiff as ad
import autodiff.numpy as anp


@dataclass
class Workload:
    name: str
    group: str
    contenders: dict[str, Callable[[], object]]
    program: Callable[[], object] | None = None  # returns our transformed jaxpr (eqn count)
    jax_eqns: Callable[[], int] | None = None
    notes: str = ""
    extra: dict = field(default_factory=dict)


def _jax():
    try:
        import jax
        import jax.numpy as jnp

        jax.config.update("jax_platforms", "cpu")
        return jax, jnp
    except Exception:  # jax is an optional peer
        return None, None


def _rng(seed=0):
    return np.random.default_rng(seed)


def _arr(a):
    return mx.array(np.asarray(a, np.float32))


def _contenders(mx_fn, ad_fn, args):
    """``mx_fn`` eager and under mx.compile, ``ad_fn`` un-jitted and under ad.jit."""
    compiled, jitted = mx.compile(mx_fn), ad.jit(ad_fn)
    return {
        "mx.grad": lambda: mx_fn(*args),
        "mx.compile(mx.grad)": lambda: compiled(*args),
        "ad.grad": lambda: ad_fn(*args),
        "ad.jit(ad.grad)": lambda: jitted(*args),
    }


def _grad_contenders(f, args, argnums=0, jax_f=None, jax_args=None):
    """mx.grad, mx.compile(mx.grad), ad.grad, ad.jit(ad.grad) [, jax.jit(jax.grad)]."""
    mg, ag = mx.grad(f, argnums=argnums), ad.grad(f, argnums=argnums)
    c = _contenders(mg, ag, args)
    jax, _ = _jax()
    if jax is not None and jax_f is not None:
        jg = jax.jit(jax.grad(jax_f, argnums=argnums))
        c["jax.jit(jax.grad)"] = lambda: jg(*jax_args)
    return c


def _to_jax(tree):
    jax, jnp = _jax()
    return ad.tree_map(lambda a: jnp.asarray(np.array(a)), tree)


# ---------------------------------------------------------------------------------------------


def sin_cos(n: int) -> Workload:
    def make(xp):
        return lambda x: xp.sum(xp.sin(x) * xp.cos(x))

    x = _arr(_rng().standard_normal(n))
    jax, jnp = _jax()
    c = _grad_contenders(
        make(anp), (x,), jax_f=make(jnp) if jax else None, jax_args=(_to_jax(x),) if jax else None
    )
    return Workload(
        f"sum(sin*cos) n=1e{int(np.log10(n))}",
        "elementwise",
        c,
        program=lambda: ad.jit(ad.grad(make(anp))).trace(x),
        jax_eqns=_jax_count(make, (x,)),
    )


def _jax_count(make, args, transform=lambda jax, f: jax.grad(f)):
    jax, jnp = _jax()
    if jax is None:
        return None
    return lambda: len(jax.make_jaxpr(transform(jax, make(jnp)))(*_to_jax(args)).eqns)


def _mlp_params(sizes, seed=0):
    rng = _rng(seed)
    params = {}
    for i, (m, n) in enumerate(zip(sizes[:-1], sizes[1:])):
        params[f"w{i}"] = _arr(rng.standard_normal((m, n)) / np.sqrt(m))
        params[f"b{i}"] = mx.zeros(n)
    return params


def _make_mlp_loss(xp, nlayers=3):
    def loss(params, x, y):
        h = x
        for i in range(nlayers):
            h = h @ params[f"w{i}"] + params[f"b{i}"]
            if i < nlayers - 1:
                h = xp.maximum(h, 0.0)
        logp = h - xp.max(h, axis=-1, keepdims=True)
        logp = logp - xp.log(xp.sum(xp.exp(logp), axis=-1, keepdims=True))
        return -xp.mean(xp.sum(y * logp, axis=-1))

    return loss


def mlp(sizes=(784, 256, 256, 10), batch=64, group="model") -> Workload:
    params = _mlp_params(list(sizes))
    rng = _rng(1)
    nlayers = len(sizes) - 1
    x = _arr(rng.standard_normal((batch, sizes[0])))
    y = _arr(np.eye(sizes[-1])[rng.integers(0, sizes[-1], batch)])
    jax, jnp = _jax()
    c = _grad_contenders(
        _make_mlp_loss(anp, nlayers),
        (params, x, y),
        jax_f=_make_mlp_loss(jnp, nlayers) if jax else None,
        jax_args=_to_jax((params, x, y)) if jax else None,
    )
    return Workload(
        f"MLP {'-'.join(map(str, sizes))}, batch {batch}",
        group,
        c,
        program=lambda: ad.jit(ad.grad(_make_mlp_loss(anp, nlayers))).trace(params, x, y),
        jax_eqns=_jax_count(lambda xp: _make_mlp_loss(xp, nlayers), (params, x, y)),
    )


def tiny_mlp() -> Workload:
    """Overhead-bound: the per-call cost of tracing and dispatch dominates."""
    return mlp((32, 32, 10), batch=8, group="overhead")


def nested_grad(depth: int) -> Workload:
    def make(xp):
        return lambda x: xp.sin(x) ** 3 * xp.exp(x)

    def nest(grad, f):
        for _ in range(depth):
            f = grad(f)
        return f

    x = mx.array(0.5)
    mg, ag = nest(mx.grad, make(anp)), nest(ad.grad, make(anp))
    c = _contenders(mg, ag, (x,))
    jax, jnp = _jax()
    if jax is not None:
        jg = jax.jit(nest(jax.grad, make(jnp)))
        xj = jnp.asarray(0.5)
        c["jax.jit(jax.grad)"] = lambda: jg(xj)
    return Workload(
        f"grad^{depth} of sin(x)^3 exp(x)",
        "higher order",
        c,
        program=lambda: ad.jit(ag).trace(x),
        jax_eqns=_jax_count(make, (x,), lambda jax, f: nest(jax.grad, f)),
    )


def hvp() -> Workload:
    rng = _rng(2)
    n = 512
    W = _arr(rng.standard_normal((n, n)) / np.sqrt(n))

    def make(xp, W):
        return lambda x: xp.sum(xp.tanh(W @ x) ** 2)

    x, v = _arr(rng.standard_normal(n)), _arr(rng.standard_normal(n))
    f = make(anp, W)
    mx_hvp = lambda x, v: mx.jvp(mx.grad(f), [x], [v])[1][0]
    ad_hvp = lambda x, v: ad.jvp(ad.grad(f), (x,), (v,))[1]
    c = _contenders(mx_hvp, ad_hvp, (x, v))
    jax, jnp = _jax()
    if jax is not None:
        fj = make(jnp, jnp.asarray(np.array(W)))
        jh = jax.jit(lambda x, v: jax.jvp(jax.grad(fj), (x,), (v,))[1])
        xj, vj = _to_jax((x, v))
        c["jax.jit(jax.grad)"] = lambda: jh(xj, vj)
    return Workload(
        "Hessian-vector product, n=512",
        "higher order",
        c,
        program=lambda: ad.jit(ad_hvp).trace(x, v),
        notes="MLX: mx.jvp(mx.grad(f)); ours: ad.jvp(ad.grad(f))",
    )


def hessian_100() -> Workload:
    rng = _rng(3)
    n = 100
    A = _arr(rng.standard_normal((n, n)) / np.sqrt(n))
    cvec = _arr(rng.standard_normal(n))

    def make(xp, A, c):
        def f(x):
            z = 0.5 * x * (A @ x) + c * x
            m = xp.max(z)
            return xp.log(xp.sum(xp.exp(z - m))) + m

        return f

    x = _arr(rng.standard_normal(n) * 0.5)
    f = make(anp, A, cvec)
    eye = mx.eye(n)
    # MLX has no hessian: forward-over-reverse, vectorised over the basis (what jacfwd(grad) does)
    mx_hess = lambda x: mx.vmap(lambda v: mx.jvp(mx.grad(f), [x], [v])[1][0])(eye)
    ah = ad.hessian(f)
    c = _contenders(mx_hess, ah, (x,))
    jax, jnp = _jax()
    if jax is not None:
        fj = make(jnp, *_to_jax((A, cvec)))
        jh = jax.jit(jax.hessian(fj))
        xj = _to_jax(x)
        c["jax.jit(jax.grad)"] = lambda: jh(xj)
    return Workload(
        "hessian, n=100",
        "higher order",
        c,
        program=lambda: ad.jit(ah).trace(x),
        notes="MLX: mx.vmap over mx.jvp(mx.grad(f)); ours: ad.hessian; JAX: jax.hessian",
    )


def per_example() -> Workload:
    params = _mlp_params([784, 256, 256, 10])
    rng = _rng(4)
    x = _arr(rng.standard_normal((128, 784)))
    y = _arr(np.eye(10)[rng.integers(0, 10, 128)])
    loss = _make_mlp_loss(anp)
    mv = mx.vmap(mx.grad(loss), in_axes=(None, 0, 0))
    av = ad.vmap(ad.grad(loss), in_axes=(None, 0, 0))
    c = _contenders(mv, av, (params, x, y))
    jax, jnp = _jax()
    if jax is not None:
        jv = jax.jit(jax.vmap(jax.grad(_make_mlp_loss(jnp)), in_axes=(None, 0, 0)))
        pj, xj, yj = _to_jax((params, x, y))
        c["jax.jit(jax.grad)"] = lambda: jv(pj, xj, yj)
    return Workload(
        "per-example grads, MLP, 128 examples",
        "vmap",
        c,
        program=lambda: ad.jit(av).trace(params, x, y),
        notes="MLX: mx.vmap(mx.grad); ours: ad.vmap(ad.grad)",
    )


def all_workloads(quick: bool) -> list[Callable[[], Workload]]:
    # the attention and transformer workloads live in benchmarks/transformers.py, which
    # uses the helpers above
    from benchmarks.transformers import attention, attention_block, transformer_step

    sizes = [10, 1000, 100_000, 10_000_000]
    return (
        [lambda n=n: sin_cos(n) for n in sizes]
        + [tiny_mlp, mlp]
        + [lambda k=k: nested_grad(k) for k in (1, 2, 3, 4)]
        + [hvp, hessian_100, per_example, attention]
        + [lambda: transformer_step(quick)]
        + [lambda: attention_block(1, 64, 64), lambda: attention_block(4, 128, 128)]
    )
