"""cffi API-mode builder for the C shim (csrc/) -> ``minibox._shim``.

Run by setuptools through ``cffi_modules`` at install time, so a ``pip
install`` compiles the shim with no manual step. API mode (a real C compile)
rather than ABI mode because the prototypes are then checked by the compiler
and calls skip libffi's marshalling on the start-up path.
"""

from cffi import FFI

ffibuilder = FFI()
ffibuilder.cdef(
    """
    int mb_unshare(int flags);
    int mb_setns(int fd, int nstype);
    int mb_mount(const char *source, const char *target, const char *fstype,
                 unsigned long flags, const char *data);
    int mb_umount2(const char *target, int flags);
    int mb_pivot_root(const char *new_root, const char *put_old);
    int mb_sethostname(const char *name, size_t len);
    int mb_setdomainname(const char *name, size_t len);
    int mb_setgroups(size_t size, const unsigned int *gids);
    int mb_setresuid(unsigned int r, unsigned int e, unsigned int s);
    int mb_setresgid(unsigned int r, unsigned int e, unsigned int s);
    int mb_ioctl_tiocsctty(int fd);
    int mb_link_up(const char *ifname);
    int mb_if_set_inet(const char *ifname, unsigned long request, uint32_t addr_be);
    int mb_route_add_default(uint32_t gateway_be);
    int mb_prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5);
    """
)
ffibuilder.set_source(
    "minibox._shim",
    '#include "shim.h"',
    # Relative to the project root, where setuptools runs the build.
    sources=["csrc/shim.c"],
    include_dirs=["csrc"],
    extra_compile_args=["-O2", "-Wall", "-Wextra"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
