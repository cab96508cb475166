"""``mlx.nn`` modules as pytrees: their leaves are the trainable parameters.

``ad.grad(lambda m: loss(m, x, y))(model)`` traces a copy of ``model`` whose trainable
parameters are traced values (frozen parameters and every other attribute are the model's own)
and returns the gradient as the nested dict of ``model.trainable_parameters()``: the structure
``nn.value_and_grad`` returns and ``optimizer.update(model, grads)`` takes.

optree registers types exactly, so every subclass of ``nn.Module`` is registered: those that
exist when autodiff is imported, and any other the first time one is flattened.
"""

from __future__ import annotations

import mlx.core as mx
import optree

from autodiff.tracing import Tracer

try:
    from mlx.nn import Module
except ImportError:  # pragma: no cover - mlx.nn ships with mlx
    Module = None

NAMESPACE = "autodiff"
_registered: set = set()
flattened = 0  # modules flattened so far, in any thread: "were there any in this tree" is a
# comparison of this count before and after flattening it (a race only gives a false "yes")


def _flatten(m):
    global flattened
    flattened += 1
    return [m.trainable_parameters()], m


def _unflatten(m, children):
    (params,) = children
    return with_parameters(m, params)


def register(cls) -> None:
    if cls in _registered:
        return
    _registered.add(cls)
    optree.register_pytree_node(cls, _flatten, _unflatten, namespace=NAMESPACE)


def register_all() -> None:
    if Module is None:
        return
    stack = [Module]
    while stack:
        cls = stack.pop()
        register(cls)
        stack.extend(cls.__subclasses__())


def unregistered_modules(leaves) -> bool:
    """Register the classes of any modules among ``leaves`` (new subclasses); whether any."""
    found = False
    for leaf in leaves:
        t = type(leaf)
        if (
            t is not mx.array
            and t is not Tracer
            and Module is not None
            and isinstance(leaf, Module)
        ):
            register(t)
            found = True
    return found


def _clone(obj):
    """A copy of a module's structure (modules, lists, dicts), sharing its arrays."""
    if Module is not None and isinstance(obj, Module):
        new = obj.__class__.__new__(obj.__class__)
        new.__dict__.update(obj.__dict__)
        for k, v in obj.items():
            dict.__setitem__(new, k, _clone(v))
        return new
    if type(obj) is list:
        return [_clone(v) for v in obj]
    if type(obj) is dict:
        return {k: _clone(v) for k, v in obj.items()}
    return obj


def _assign(dst, params) -> None:
    items = params.items() if isinstance(params, dict) else enumerate(params)
    for k, v in items:
        if isinstance(v, (dict, list)) and type(v) is not Tracer:
            _assign(dst[k], v)
        elif isinstance(dst, dict):
            dict.__setitem__(dst, k, v)
        else:
            dst[k] = v


def with_parameters(module, params):
    """A copy of ``module`` with ``params`` (a tree like ``trainable_parameters()``) as its
    trainable parameters; the module itself is not changed."""
    new = _clone(module)
    _assign(new, params)
    return new


def as_parameter_dicts(tree):
    """Modules in ``tree`` (a gradient) as the dicts of their trainable parameters."""
    if Module is None:
        return tree
    return optree.tree_map(
        lambda x: x.trainable_parameters() if isinstance(x, Module) else x,
        tree,
        is_leaf=lambda x: isinstance(x, Module),
        none_is_leaf=True,
        namespace=NAMESPACE,
    )


register_all()
