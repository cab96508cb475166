"""``autodiff.mlx.nn``: mlx.nn, with ``value_and_grad(model, fn)`` on autodiff's engine.

Example:
    >>> import autodiff.mlx.nn as nn
    >>> loss_and_grad = nn.value_and_grad(model, loss_fn)
    >>> loss, grads = loss_and_grad(model, x, y)   # grads: model.trainable_parameters() layout
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from mlx.nn import *  # noqa: F403 - the whole of mlx.nn, then value_and_grad replaced
from mlx.nn import Module, init, layers, losses, utils  # noqa: F401

from autodiff.mlx._transforms import value_and_grad as _value_and_grad


def value_and_grad(model: Module, fn: Callable) -> Callable:
    """``fn``'s value and its gradient with respect to ``model``'s trainable parameters, as
    ``mlx.nn.value_and_grad``: frozen parameters are not differentiated, and the gradient has
    the layout of ``model.trainable_parameters()``.

    Example:
        >>> loss, grads = nn.value_and_grad(model, loss_fn)(model, x, y)
        >>> optimizer.update(model, grads)
    """

    def inner(params, *args, **kwargs):
        model.update(params)
        return fn(*args, **kwargs)

    vg = _value_and_grad(inner)

    @functools.wraps(fn, updated=())
    def wrapped(*args, **kwargs):
        params = model.trainable_parameters()
        try:
            return vg(params, *args, **kwargs)
        finally:
            model.update(params)  # the model keeps its own parameters, not traced ones

    return wrapped
