"""Control flow and custom derivatives: primitives with sub-jaxprs, composing with every
transform (see each module's docstring for its rules)."""

from autodiff.control import scan_rules as _scan_rules  # noqa: F401  (registers the rules)
from autodiff.control.cond import cond, switch
from autodiff.control.custom import custom_jvp, custom_vjp
from autodiff.control.loops import fori_loop, while_loop
from autodiff.control.remat import (
    checkpoint,
    checkpoint_name,
    checkpoint_policies,
    remat,
)
from autodiff.control.scan import scan
