"""cffi API-mode builder for csrc/caps.c -> ``minibox._caps`` (capget/capset/prctl).

Why not python-prctl: it has no ambient-set support, knows only the
capabilities libcap knew at its build, and costs ~1.7 ms to import; this
module costs ~0.3 ms once _cffi_backend is loaded (the syscall shim loads it
anyway). Why not ctypes: ~2.4 ms import on every container start.
"""

from cffi import FFI

ffibuilder = FFI()
ffibuilder.cdef(
    """
    int mb_capget(uint32_t sets[6]);
    int mb_capset(const uint32_t sets[6]);
    int mb_prctl(int option, unsigned long a2, unsigned long a3,
                 unsigned long a4, unsigned long a5);
    """
)
ffibuilder.set_source(
    "minibox._caps",
    '#include "caps.h"',
    sources=["csrc/caps.c"],
    include_dirs=["csrc"],
    extra_compile_args=["-O2", "-Wall", "-Wextra"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
