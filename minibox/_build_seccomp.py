"""cffi API-mode builder for libseccomp -> ``minibox._seccomp``.

Declares the few libseccomp calls minibox needs to compile a filter, plus
csrc/seccomp.c's one call that installs a compiled (cached) program (its
header is mb_seccomp.h because <seccomp.h> is libseccomp's). No policy:
the filter is described by the OCI spec and translated in
minibox/runtime/seccomp.py. API mode so the compiler checks these prototypes
against <seccomp.h>; libseccomp returns a negative errno, never sets errno.
Imported only when a container's spec carries a seccomp filter.
"""

from cffi import FFI

ffibuilder = FFI()
ffibuilder.cdef(
    """
    typedef void *scmp_filter_ctx;
    typedef uint64_t scmp_datum_t;

    enum scmp_compare {
        SCMP_CMP_NE, SCMP_CMP_LT, SCMP_CMP_LE, SCMP_CMP_EQ,
        SCMP_CMP_GE, SCMP_CMP_GT, SCMP_CMP_MASKED_EQ, ...
    };
    enum scmp_filter_attr {
        SCMP_FLTATR_ACT_DEFAULT, SCMP_FLTATR_ACT_BADARCH, SCMP_FLTATR_CTL_NNP,
        SCMP_FLTATR_CTL_OPTIMIZE, ...
    };
    struct scmp_arg_cmp {
        unsigned int arg;
        enum scmp_compare op;
        scmp_datum_t datum_a;
        scmp_datum_t datum_b;
        ...;
    };

    #define SCMP_ACT_KILL_PROCESS ...
    #define SCMP_ACT_KILL_THREAD ...
    #define SCMP_ACT_TRAP ...
    #define SCMP_ACT_LOG ...
    #define SCMP_ACT_ALLOW ...
    #define SCMP_ACT_NOTIFY ...

    scmp_filter_ctx seccomp_init(uint32_t def_action);
    void seccomp_release(scmp_filter_ctx ctx);
    int seccomp_attr_set(scmp_filter_ctx ctx, enum scmp_filter_attr attr, uint32_t value);
    uint32_t seccomp_arch_resolve_name(const char *arch_name);
    uint32_t seccomp_arch_native(void);
    int seccomp_arch_add(scmp_filter_ctx ctx, uint32_t arch_token);
    int seccomp_syscall_resolve_name(const char *name);
    int seccomp_rule_add_array(scmp_filter_ctx ctx, uint32_t action, int syscall,
                               unsigned int arg_cnt, const struct scmp_arg_cmp *arg_array);
    int seccomp_load(const scmp_filter_ctx ctx);
    int seccomp_export_bpf(const scmp_filter_ctx ctx, int fd);
    struct scmp_version { unsigned int major; unsigned int minor; unsigned int micro; };
    const struct scmp_version *seccomp_version(void);

    int mb_seccomp_set_filter(const void *insns, unsigned short count);
    """
)
ffibuilder.set_source(
    "minibox._seccomp",
    '#include <seccomp.h>\n#include "mb_seccomp.h"',
    sources=["csrc/seccomp.c"],
    include_dirs=["csrc"],
    libraries=["seccomp"],
    extra_compile_args=["-O2", "-Wall", "-Wextra"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
