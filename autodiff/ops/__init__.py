"""Primitive families beyond the core set, one module each, every rule of a family together
(shape rule, typed wrapper, JVP, transpose, batching, lowering, float64 implementation), as
``autodiff/extend.py``'s checklist describes. ``autodiff.lax`` re-exports the wrappers."""
