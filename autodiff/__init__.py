"""autodiff: JAX-style composable function transforms for MLX."""

import autodiff.numpy  # noqa: F401,E402  (installs the array surface on tracers)
from autodiff import distributed
from autodiff import routing as _routing
from autodiff.batching import vmap
from autodiff.config import config
from autodiff.control import (
    checkpoint,
    checkpoint_name,
    checkpoint_policies,
    cond,
    custom_jvp,
    custom_vjp,
    fori_loop,
    remat,
    scan,
    switch,
    while_loop,
)
from autodiff.distributed import spmd
from autodiff.errors import ConcretizationError, TransformError, UnexpectedTracerError
from autodiff.forward import jvp, linearize
from autodiff.ir import ClosedJaxpr, Jaxpr, ShapedArray, typecheck
from autodiff.jacobians import hessian, jacfwd, jacrev
from autodiff.jit import clear_caches, jit
from autodiff.reverse import grad, value_and_grad, vjp
from autodiff.staging import eval_jaxpr, make_jaxpr
from autodiff.tree import register_pytree_node, tree_flatten, tree_leaves, tree_map, tree_unflatten

stop_gradient = autodiff.numpy.stop_gradient

_routing.install()

__version__ = "0.1.0"
