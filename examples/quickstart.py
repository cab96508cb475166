"""A tour of autodiff: trace a model loss, look at its IR and the MLX code it lowers to, then
differentiate it every way there is.

Run:  python examples/quickstart.py
"""

import mlx.core as mx
import numpy as np

import autodiff as ad
import autodiff.numpy as anp  # mirrors mlx.core; works on mx.arrays and traced values alike
from autodiff.testing import check_grads


def loss(params, x, y):
    """Cross-entropy of a two-layer MLP."""
    h = anp.tanh(x @ params["w1"] + params["b1"])
    logits = h @ params["w2"] + params["b2"]
    return -anp.mean(anp.sum(y * (logits - anp.logsumexp(logits, axis=-1, keepdims=True)), axis=-1))


def section(title):
    print(f"\n=== {title} " + "=" * (72 - len(title)))


mx.random.seed(0)
params = {
    "w1": mx.random.normal((4, 8)) * 0.5,
    "b1": mx.zeros(8),
    "w2": mx.random.normal((8, 3)) * 0.5,
    "b2": mx.zeros(3),
}
x = mx.random.normal((16, 4))
y = mx.eye(3)[mx.random.randint(0, 3, (16,))]

section("1. The traced IR (a jaxpr) of the loss")
print(ad.make_jaxpr(loss)(params, x, y))

section("2. The MLX source its gradient lowers to")
grad_loss = ad.jit(ad.grad(loss))
print(grad_loss.lower(params, x, y).as_text())

section("3. Run it and check against plain MLX")
ours = grad_loss(params, x, y)
theirs = mx.grad(loss)(params, x, y)  # the same function object runs under mx.grad
for k in sorted(params):
    err = float(mx.max(mx.abs(ours[k] - theirs[k])))
    print(f"d loss / d {k:<3} shape {str(ours[k].shape):<8} max |ours - mx.grad| = {err:.2e}")
    assert err < 1e-5

section("4. value_and_grad with has_aux")


def loss_with_accuracy(params, x, y):
    logits = anp.tanh(x @ params["w1"] + params["b1"]) @ params["w2"] + params["b2"]
    acc = anp.mean((anp.argmax(logits, axis=-1) == anp.argmax(y, axis=-1)).astype(mx.float32))
    return loss(params, x, y), {"accuracy": acc}


(value, aux), grads = ad.value_and_grad(loss_with_accuracy, has_aux=True)(params, x, y)
print(f"loss {float(value):.4f}, accuracy {float(aux['accuracy']):.2f}, grads for {sorted(grads)}")

section("5. Third derivative: grad(grad(grad(f)))")
f = lambda t: anp.sin(t) ** 3 * anp.exp(t)
d3 = ad.grad(ad.grad(ad.grad(f)))
t = 0.5
closed_form = (
    np.exp(t)
    / 4
    * (3 * 2**1.5 * np.sin(t + 3 * np.pi / 4) - 10**1.5 * np.sin(3 * t + 3 * np.arctan(3)))
)
print(f"f'''(0.5) = {float(d3(mx.array(t))):.5f}   closed form {closed_form:.5f}")
print(f"equations in the grad^3 program: {len(ad.make_jaxpr(d3)(mx.array(t)).eqns)}")

section("6. A Hessian-vector product (forward-over-reverse)")
v = ad.tree_map(lambda p: mx.ones_like(p) * 0.1, params)
hvp = ad.jvp(lambda p: ad.grad(loss)(p, x, y), (params,), (v,))[1]
print({k: tuple(val.shape) for k, val in hvp.items()})

section("7. Per-example gradients with vmap(grad) and a Hessian")
per_example = ad.vmap(ad.grad(loss), in_axes=(None, 0, 0))(params, x[:, None], y[:, None])
print("per-example d/dw1:", per_example["w1"].shape)
H = ad.hessian(lambda p: loss(p, x, y))(params)
print("Hessian block d2 loss / d b2 d b2:\n", H["b2"]["b2"])

section("8. check_grads on a user function (float64 finite differences, to order 2)")
check_grads(lambda p: loss(p, x, y), (params,), order=2)
print("check_grads passed: JVP and VJP agree with finite differences up to second order")
