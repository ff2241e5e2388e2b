"""Atomic int64 operations and spin loops, compiled by numba, for :mod:`skoffice31._team`.

Imported only when numba is (by :func:`skoffice31._team.compile_sync`):
sequentially consistent read-modify-write, acquire loads and release stores
on elements of int64 arrays, and spin loops on the x86 ``pause``
instruction, all releasing the GIL. The functions are module-level so that
numba's on-disk cache keeps them. Their meaning for one thread is that of
the plain Python functions of the same names in :mod:`skoffice31._team`.
"""

import platform

import numba
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from skoffice31._team import DONE, NEXT, POST

#: Whether the spin loops emit ``pause`` (x86 only; elsewhere they just loop).
_PAUSE = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")


def _pointer(context, builder, sig, args):
    """The address of ``args[0][args[1]]`` (a 1-D array and an index)."""
    aryty = sig.args[0]
    ary = context.make_array(aryty)(context, builder, args[0])
    return cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]],
                                    wraparound=False, boundscheck=False)


@intrinsic
def _atomic_add(typingctx, arr, idx, val):
    def codegen(context, builder, sig, args):
        return builder.atomic_rmw("add", _pointer(context, builder, sig, args), args[2],
                                  "seq_cst")
    return types.int64(arr, idx, types.int64), codegen


@intrinsic
def _atomic_load(typingctx, arr, idx):
    def codegen(context, builder, sig, args):
        return builder.load_atomic(_pointer(context, builder, sig, args), "acquire", 8)
    return types.int64(arr, idx), codegen


@intrinsic
def _atomic_store(typingctx, arr, idx, val):
    def codegen(context, builder, sig, args):
        builder.store_atomic(args[2], _pointer(context, builder, sig, args), "release", 8)
        return context.get_dummy_value()
    return types.void(arr, idx, types.int64), codegen


@intrinsic
def _cpu_relax(typingctx):
    def codegen(context, builder, sig, args):
        if _PAUSE:  # tells the core a spin loop runs: less power, no pipeline flush on exit
            fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), []), "llvm.x86.sse2.pause")
            builder.call(fn, [])
        return context.get_dummy_value()
    return types.void(), codegen


_jit = numba.njit(cache=True, nogil=True)


@_jit
def claim(counters, n_parts):
    p = _atomic_add(counters, NEXT, 1)
    return p if p < n_parts else -1


@_jit
def finish(counters):
    _atomic_add(counters, DONE, 1)


@_jit
def post(flags, seq):
    _atomic_store(flags, POST, seq)


@_jit
def wait_done(counters, n_parts):
    n = 0
    while _atomic_load(counters, DONE) < n_parts:
        _cpu_relax()
        n += 1
    return n


@_jit
def wait_post(flags, seq, spins):
    n = 0
    while _atomic_load(flags, POST) == seq:
        if n >= spins:
            return False
        _cpu_relax()
        n += 1
    return True
