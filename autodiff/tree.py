"""Pytrees, through optree: dicts, lists, tuples, namedtuples, None, ``mlx.nn`` modules (their
trainable parameters; ``autodiff/modules.py``) and registered nodes.

``None`` is an empty subtree, as in JAX; dict keys are visited in sorted order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optree

NAMESPACE = "autodiff"


def tree_flatten(tree: Any, is_leaf: Callable | None = None):
    """``(leaves, treedef)``.

    Example:
        >>> ad.tree_flatten({"w": mx.zeros(2), "b": [1.0, None]})
        ([1.0, array([0, 0], dtype=float32)], PyTreeSpec({'b': [*, None], 'w': *}, namespace='autodiff'))
    """
    leaves, treedef = optree.tree_flatten(tree, is_leaf, none_is_leaf=False, namespace=NAMESPACE)
    if _new_modules(leaves):  # an mlx.nn.Module subclass first seen now: registered, again
        return optree.tree_flatten(tree, is_leaf, none_is_leaf=False, namespace=NAMESPACE)
    return leaves, treedef


def _new_modules(leaves) -> bool:
    from autodiff.modules import unregistered_modules

    return unregistered_modules(leaves)


def tree_unflatten(treedef, leaves):
    """Rebuild a tree of ``treedef``'s structure from ``leaves``."""
    return optree.tree_unflatten(treedef, leaves)


def tree_leaves(tree: Any, is_leaf: Callable | None = None) -> list:
    """The leaves of ``tree`` in flattening order.

    Example:
        >>> ad.tree_leaves({"a": 1, "b": (2, 3)})
        [1, 2, 3]
    """
    return optree.tree_leaves(tree, is_leaf, none_is_leaf=False, namespace=NAMESPACE)


def tree_structure(tree: Any, is_leaf: Callable | None = None):
    return optree.tree_structure(tree, is_leaf, none_is_leaf=False, namespace=NAMESPACE)


def tree_map(f: Callable, tree: Any, *rest: Any, is_leaf: Callable | None = None) -> Any:
    """Apply ``f`` leafwise to one or more trees of the same structure.

    Example:
        >>> ad.tree_map(lambda p, g: p - 0.1 * g, params, grads)
    """
    return optree.tree_map(f, tree, *rest, is_leaf=is_leaf, none_is_leaf=False, namespace=NAMESPACE)


def register_pytree_node(cls: type, flatten: Callable, unflatten: Callable) -> type:
    """Make ``cls`` a pytree node.

    ``flatten(x) -> (children, aux_data)`` and ``unflatten(aux_data, children) -> x``, as in
    ``jax.tree_util.register_pytree_node``.

    Example:
        >>> ad.register_pytree_node(Point, lambda p: ((p.x, p.y), None), lambda _, c: Point(*c))
    """
    return optree.register_pytree_node(
        cls, flatten, lambda aux, children: unflatten(aux, list(children)), namespace=NAMESPACE
    )
