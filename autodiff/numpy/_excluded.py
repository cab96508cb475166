"""The functions of mlx.core (and mx.linalg, mx.fft, mx.fast, mx.distributed) that
``autodiff.numpy`` does not provide, each with the reason. ``tests/test_coverage.py`` checks
that every public function of those namespaces is either in ``autodiff.numpy`` or here, so a
new MLX release shows what is new.
"""

_POINT_TO_POINT = (
    "point-to-point messages between two ranks are not collectives over a named axis: no "
    "vmap interpretation, and the order of sends and receives is a side effect the IR does "
    "not model; call mx.distributed.send/recv on concrete arrays, outside transforms"
)
_OPAQUE_KERNEL = (
    "an opaque user kernel (Metal/CUDA source or binary): autodiff cannot trace, differentiate "
    "or batch what it computes, and a custom_vjp around it would still trace its primal; it "
    "needs a kernel primitive with user-given derivative and batching rules, which autodiff "
    "does not have. Call it on concrete arrays outside transforms"
)

EXCLUDED: dict[str, str] = {
    # transforms and compilation: autodiff's own are in `autodiff` (and, with MLX's
    # signatures, in `autodiff.mlx`)
    "grad": "a transform, not an array function: use ad.grad",
    "value_and_grad": "a transform: use ad.value_and_grad",
    "vjp": "a transform: use ad.vjp",
    "jvp": "a transform: use ad.jvp",
    "vmap": "a transform: use ad.vmap",
    "compile": "a transform: use ad.jit",
    "checkpoint": "a transform: use ad.checkpoint",
    "disable_compile": "MLX compiler setting, not an array function",
    "enable_compile": "MLX compiler setting, not an array function",
    # evaluation, memory, devices and streams
    "eval": "evaluation of concrete arrays, not an array function",
    "async_eval": "evaluation of concrete arrays, not an array function",
    "synchronize": "stream synchronisation, not an array function",
    "clear_cache": "memory management, not an array function",
    "get_active_memory": "memory management, not an array function",
    "get_cache_memory": "memory management, not an array function",
    "get_memory_limit": "memory management, not an array function",
    "get_peak_memory": "memory management, not an array function",
    "reset_peak_memory": "memory management, not an array function",
    "set_cache_limit": "memory management, not an array function",
    "set_memory_limit": "memory management, not an array function",
    "set_wired_limit": "memory management, not an array function",
    "default_device": "device selection, not an array function",
    "set_default_device": "device selection, not an array function",
    "default_stream": "stream selection, not an array function",
    "set_default_stream": "stream selection, not an array function",
    "new_stream": "stream selection, not an array function",
    "new_thread_local_stream": "stream selection, not an array function",
    "new_thread_unsafe_stream": "stream selection, not an array function",
    "clear_streams": "stream selection, not an array function",
    "stream": "stream context manager, not an array function",
    "device_count": "device query, not an array function",
    "device_info": "device query, not an array function",
    "is_available": "device query, not an array function",
    # input/output and interoperation
    "load": "file I/O of concrete arrays",
    "save": "file I/O of concrete arrays",
    "savez": "file I/O of concrete arrays",
    "savez_compressed": "file I/O of concrete arrays",
    "save_gguf": "file I/O of concrete arrays",
    "save_safetensors": "file I/O of concrete arrays",
    "export_function": "serialises MLX's own graph of a function; export ad.jit's lowered MLX program instead",
    "import_function": "loads an MLX-exported graph",
    "exporter": "serialises MLX's own graph of a function",
    "export_to_dot": "draws MLX's own graph of concrete arrays",
    "from_dlpack": "conversion of external buffers to concrete arrays",
    "get_printoptions": "printing settings",
    "set_printoptions": "printing settings",
    "printoptions": "printing settings",
    "get_array_buffer_size": "buffer introspection of concrete arrays",
    "einsum_path": "returns a contraction plan (a string and a list), not an array",
    # quantized products
    "gather_qqmm": "MLX 0.32.4 evaluates it only on CUDA GPUs (the CPU raises NYI), so its "
    "lowering cannot be checked; and, like qqmm (which autodiff.numpy traces, forward only), "
    "it quantizes its inputs on the fly, so it is piecewise constant with no derivative (MLX's "
    "VJP is a straight-through estimator). Use anp.gather_mm on dequantized operands instead",
    # mx.fast: user kernels are opaque to autodiff
    "fast.metal_kernel": _OPAQUE_KERNEL,
    "fast.cuda_kernel": _OPAQUE_KERNEL,
    "fast.precompiled_cuda_kernel": _OPAQUE_KERNEL,
    # mx.distributed: the collectives are anp.distributed (autodiff/ops/collectives.py)
    "distributed.init": "sets up the process group (no array operation): call it directly, "
    "ad.spmd does by default",
    "distributed.is_available": "asks whether a backend exists (no array operation)",
    "distributed.send": _POINT_TO_POINT,
    "distributed.recv": _POINT_TO_POINT,
    "distributed.recv_like": _POINT_TO_POINT,
}

# Attributes and special methods of mx.array that traced values (autodiff.tracing.Tracer) do
# not have, each with the reason. tests/test_coverage.py checks this list against mx.array.
EXCLUDED_ARRAY_ATTRIBUTES: dict[str, str] = {
    "__div__": "Python 2's division hook; Python 3 calls __truediv__, which tracers have",
    "__rdiv__": "Python 2's division hook; Python 3 calls __rtruediv__, which tracers have",
    "__bytes__": "the raw bytes of a concrete array: a traced value has no data yet",
    "__dlpack__": "exports a concrete buffer through DLPack: a traced value has no data yet",
    "__dlpack_device__": "the device of a concrete DLPack buffer: a traced value has none",
    "__setstate__": "unpickling restores a concrete array: traced values are not pickled",
}
