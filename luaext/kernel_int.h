/* kernel_int.h: what the files of the kernel layer share among themselves
 * (kernel.c, kernel_tc.c, kernel_env.c).  Lua bindings include kernel.h. */
#ifndef TI_KERNEL_INT_H
#define TI_KERNEL_INT_H

#include "kernel.h"

/* kernel_env.c: privileges, kernel facts, and failures explained */
int ti_check_privileges(enum ti_mode mode, char *why, size_t whylen);
bool ti_can_read_kernel(void); /* CAP_PERFMON or CAP_SYS_ADMIN: BTF pointers, probe reads */
bool ti_have_kprobes(void);
bool ti_kernel_btf_has_func(struct btf **btf, const char *name);
bool ti_kallsyms_has(const char *name);
int ti_netns_find(uint32_t ino, char *path, size_t len);
int ti_netns_enter(int fd, int *back);
void ti_netns_leave(int back);
void ti_libbpf_log_clear(void);
/* Fill why with "MODE: STEP failed: strerror; what to do [libbpf: ...]";
 * returns err as -errno. */
int ti_explain(int err, char *why, size_t whylen, enum ti_mode mode, const char *step);

/* kernel_tc.c */
int ti_tc_attach(struct ti_kernel *k, const struct ti_load_opts *o, int prog_fd, char *why,
		 size_t whylen);
void ti_tc_detach(struct ti_kernel *k);
void ti_tc_sweep_stale(void);

#endif /* TI_KERNEL_INT_H */
