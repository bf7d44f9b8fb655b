/* SPDX-License-Identifier: GPL-2.0-only */
/* kernel_int.h: what the files of the kernel layer share among themselves
 * (kernel.c, kernel_tc.c, kernel_env.c, kernel_maps.c, kernel_replay.c).  Lua bindings include kernel.h. */
#ifndef TI_KERNEL_INT_H
#define TI_KERNEL_INT_H

#include "kernel.h"

struct btf;

/* kernel_env.c: privileges, kernel facts, and failures explained */
int ti_check_privileges(enum ti_mode mode, char *why, size_t whylen);
bool ti_can_read_kernel(void); /* CAP_PERFMON or CAP_SYS_ADMIN: BTF pointers, probe reads */
bool ti_have_kprobes(void);
bool ti_kernel_btf_has_func(struct btf **btf, const char *name);
bool ti_kallsyms_has(const char *name);
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

/* kernel_replay.c: a pcap file through the kernel's path in user space */
struct ti_replay;
int ti_replay_open(struct ti_replay **out, const char *path, const struct ti_load_config *load,
		   uint32_t table_entries, uint32_t snaplen, const struct ti_filter *f, char *why,
		   size_t whylen);
int ti_replay_set_filter(struct ti_replay *r, const struct ti_filter *f);
int ti_replay_next(struct ti_replay *r, uint64_t until_ns, const void **rec, size_t *size,
		   char *why, size_t whylen);
uint64_t ti_replay_clock(const struct ti_replay *r);
uint64_t ti_replay_next_ts(const struct ti_replay *r);
bool ti_replay_ended(const struct ti_replay *r);
int ti_replay_linktype(const struct ti_replay *r);
void ti_replay_stats(const struct ti_replay *r, uint64_t out[TI_STAT_MAX]);
void *ti_replay_map(struct ti_replay *r, enum ti_map_id m, uint32_t *n);
void ti_replay_close(struct ti_replay *r);

#endif /* TI_KERNEL_INT_H */
