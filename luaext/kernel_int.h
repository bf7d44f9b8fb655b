/* SPDX-License-Identifier: GPL-2.0-only */
/* kernel_int.h: what the files of the kernel layer share among themselves
 * (kernel.c, kernel_tc.c, kernel_env.c, kernel_maps.c, kernel_replay.c): the
 * struct ti_kernel, each backend's table of operations, and their helpers.
 * Lua bindings include kernel.h, never this. */
#ifndef TI_KERNEL_INT_H
#define TI_KERNEL_INT_H

#include "kernel.h"

struct btf;
struct tcpinspect_bpf;
struct bpf_link;
struct ring_buffer;
struct ti_replay;

/* ---- the interface's operations -------------------------------------------------
 *
 * Each backend fills one table (kernel.c: the live one, kernel_replay.c:
 * the replay's); kernel.c's ti_kernel_* functions call through it, and
 * only the two constructors choose a table.  The maps' operations are the
 * elements as BPF_MAP_LOOKUP_ELEM gives them (k->ncpus copies of an
 * element, each rounded up to 8 bytes): kernel_maps.c merges them. */
struct ti_kernel_ops {
	int (*set_filter)(struct ti_kernel *k, const struct ti_filter *f);
	int (*wait)(struct ti_kernel *k, int64_t timeout_ms);
	int (*consume)(struct ti_kernel *k, int64_t timeout_ms, ti_record_fn fn, void *ctx, char *why, size_t whylen);
	int (*stats)(const struct ti_kernel *k, uint64_t out[TI_STAT_MAX]);
	int (*drop_stats)(const struct ti_kernel *k, uint64_t out[TI_DROP_CTR_SLOTS], char *why, size_t whylen);
	void (*describe)(const struct ti_kernel *k, struct ti_kernel_info *info);
	void (*hooks)(const struct ti_kernel *k, ti_hook_fn fn, void *ctx);
	int (*test_run)(const struct ti_kernel *k, const void *frame, size_t len, int repeat, int *retval, uint32_t *ns,
			char *why, size_t whylen);
	/* map m: its number of elements; n elements from `first` read into
	 * vals or written from it (n * k->ncpus strides; write: the elements
	 * exist, as BPF_EXIST); m is also TI_MAP_SUM(table), below */
	uint32_t (*map_elems)(const struct ti_kernel *k, enum ti_map_id m);
	int (*map_read)(const struct ti_kernel *k, enum ti_map_id m, uint32_t first, uint32_t n, void *vals);
	int (*map_write)(const struct ti_kernel *k, enum ti_map_id m, uint32_t first, uint32_t n, const void *vals);
	/* the "conns" table (conns = true): the key after prev (NULL: the
	 * first) or -ENOENT at the end; an entry's value; its removal, with
	 * its value as it was when removed (a segment may have come since the
	 * walk read it) */
	int (*conn_next)(const struct ti_kernel *k, const struct ti_conn_key *prev, struct ti_conn_key *next);
	int (*conn_lookup)(const struct ti_kernel *k, const struct ti_conn_key *key, struct ti_conn *c);
	int (*conn_take)(const struct ti_kernel *k, const struct ti_conn_key *key, struct ti_conn *c);
	void (*close)(struct ti_kernel *k); /* release what the backend holds (not k itself) */
};

/* One tc ingress attachment (kernel_tc.c). */
struct ti_tc_hook {
	int ifindex;
	uint32_t handle; /* netlink filter handle; 0 when a tcx link is used */
	int link_fd;	 /* tcx link, or -1 */
	int state_fd;	 /* the netlink filter's state file, flock-ed while we live, or -1 */
	int ns;		 /* its network namespace: an index in ti_kernel.tcns */
	uint32_t netns;	 /* that namespace's inode */
	char name[32];	 /* the interface's name, in its namespace */
	char label[48];	 /* session.probes' "tc/ingress:LABEL": the name, "NAME@NETNS" for
			  * another namespace's interface in a session over every one */
};

/* An interface (or a network namespace, "@INODE") tc mode did not attach
 * to, and why (session.probes). */
struct ti_tc_skip {
	char name[48];
	char why[256];
	int ns; /* the namespace index it belongs to; -1: a namespace not entered */
};
#define TI_MAX_SKIPPED 64
#define TI_MAX_HOOKS 256 /* tc attachments of one session, every namespace together */
#define TI_MAX_NETNS 64	 /* network namespaces one tc session attaches in */

/* A network namespace a tc session attaches in (kernel_tc.c). */
struct ti_tc_ns {
	uint32_t ino;
	int fd;		/* entered by (setns) around netlink/tcx calls; -1: the process's own */
	int monitor_fd; /* netlink RTMGRP_LINK socket opened inside it, or -1 (dev= given) */
	bool news;	/* the monitor reported changes not acted on yet */
	bool present;	/* found by the last rescan (a session over every namespace) */
};

/* The interface's struct: what both backends share first, then each
 * backend's own state, which only its files touch. */
struct ti_kernel {
	const struct ti_kernel_ops *ops;
	int ncpus; /* the copies of a map element (a replay: 1) */
	/* connections (conns = true; kernel_conns.c): the walk's state */
	struct ti_conn_walk *cw;

	/* live (kernel.c, kernel_tc.c, kernel_maps.c's live_* functions) */
	struct tcpinspect_bpf *skel;
	enum ti_mode mode;	    /* the mode loaded */
	struct bpf_link *links[8];  /* entries, and with sockets = true the socket side and returns */
	struct bpf_link *drop_link; /* the drop hook's, or NULL */
	bool tc_sk_every_netns;	    /* sockets = true in tc: the one program, attached in every netns */
	char drop_status[256];	    /* session.probes["skb:kfree_skb"]: "attached ..." or why not ("": drops off) */
	int nlinks;
	struct ti_tc_hook tc[TI_MAX_HOOKS];
	int ntc;
	struct ti_tc_skip tc_skipped[TI_MAX_SKIPPED]; /* tc, every interface: not attached */
	int ntc_skipped;
	struct ti_tc_ns tcns[TI_MAX_NETNS]; /* tc: the namespaces attached in; [0] the first */
	int ntcns;
	bool tc_every_netns;	   /* tc with no scope and no dev=: every namespace */
	int tc_wake_fd;		   /* epoll over the monitors (and the rescan timer), or -1 */
	int tc_timer_fd;	   /* every namespace: the rescan's timerfd, or -1 */
	int tc_prog_fd;		   /* what the monitor attaches to new interfaces */
	char tc_netns_path[256];   /* the file tc entered a scope's namespace by ("" if not scoped) */
	char tc_netns_note[192];   /* tc with no scope: why only this namespace ("" if every one) */
	char probe_status[2][192]; /* tcp_v4_rcv, tcp_v6_rcv: "attached" or why not */
	char cgroup_path[512];
	uint32_t slot;			  /* the active filter slot */
	struct ti_filter *slot_filter[2]; /* what each slot holds (for deletes) */
	int owner;			  /* the PID that loaded and attached: only it detaches
					   * (a forked child closes its copies of the fds, no more) */
	/* the waiter: what ti_kernel_wait sleeps on and session:fd() hands out */
	struct ring_buffer *rb; /* the ring's reader (events), or NULL */
	int epfd;		/* epoll over the ring's and tc_wake_fd, or -1 */
	ti_record_fn rec_fn;	/* during ti_kernel_consume: where records go */
	void *rec_ctx;
	bool rec_stopped; /* rec_fn returned < 0 */

	/* replay (kernel_replay.c) */
	struct ti_replay *replay;
};

/* The name of a probe (enum ti_probe, bpf/tcpinspect.h): session.probes' keys. */
static inline const char *ti_probe_key(int probe)
{
	static const char *const names[] = {
#define TI_X(id, name) name,
		TI_PROBES(TI_X)
#undef TI_X
	};

	return names[probe];
}

/* kernel.c: a live struct ti_kernel before anything is loaded (init), the
 * live backend's open on it (on failure k is released), and the release
 * of whatever backend k holds without freeing k (idempotent).
 * ti_kernel_open and ti_kernel_close are init + open_live and release +
 * free; spec/fuzz/kernel_harness.c calls the steps to look inside. */
void ti_kernel_init(struct ti_kernel *k);
int ti_kernel_open_live(struct ti_kernel *k, const struct ti_load_opts *o, const struct ti_filter *f, char *why,
			size_t whylen);
void ti_kernel_release(struct ti_kernel *k);
/* the rodata of a load (kernel_replay.c runs the same code with it) */
void ti_set_load_config(struct ti_load_config *c, const struct ti_load_opts *o, enum ti_mode mode);

/* kernel_env.c: privileges, kernel facts, and failures explained */
int ti_check_privileges(enum ti_mode mode, char *why, size_t whylen);
bool ti_can_read_kernel(void); /* CAP_PERFMON or CAP_SYS_ADMIN: BTF pointers, probe reads */
bool ti_have_kprobes(void);
bool ti_kernel_btf_has_func(struct btf **btf, const char *name);
/* The kernel symbols looked up in /proc/kallsyms, X(ID, name): the
 * addresses the program carries in its rodata (bpf/tcpinspect.h), and the
 * functions kprobe mode attaches to.  One pass over the file finds them
 * all, once per process (ti_kallsyms_addr, ti_kallsyms_has). */
#define TI_KSYMS(X)                             \
	X(PAGE_OFFSET_BASE, "page_offset_base") \
	X(VMEMMAP_BASE, "vmemmap_base")         \
	X(TCP_CONN_REQUEST, "tcp_conn_request") \
	X(TCP_CHECK_REQ, "tcp_check_req")       \
	X(TCP_V4_RCV, "tcp_v4_rcv")             \
	X(TCP_V6_RCV, "tcp_v6_rcv")             \
	X(SK_FILTER_TRIM_CAP, "sk_filter_trim_cap")

enum ti_ksym {
#define TI_X(id, name) TI_KSYM_##id,
	TI_KSYMS(TI_X)
#undef TI_X
		TI_KSYM_COUNT,
};

/* The symbol's address; 0: unknown (not there, hidden by kptr_restrict, or
 * no kallsyms). */
uint64_t ti_kallsyms_addr(enum ti_ksym s);
/* Is name in /proc/kallsyms?  true where the file cannot be read: the
 * attach decides. */
bool ti_kallsyms_has(const char *name);
int ti_netns_enter(int fd, int *back);
void ti_netns_leave(int back);
void ti_libbpf_log_clear(void);
/* Fill why with "MODE: STEP failed: strerror; what to do [libbpf: ...]";
 * returns err as -errno. */
int ti_explain(int err, char *why, size_t whylen, enum ti_mode mode, const char *step);

/* kernel_tc.c */
int ti_tc_attach(struct ti_kernel *k, const struct ti_load_opts *o, int prog_fd, char *why, size_t whylen);
void ti_tc_detach(struct ti_kernel *k);
void ti_tc_sweep_stale(void);
/* tc mode on every interface: attach to interfaces that appeared (or came
 * up) since the last call, and let go of those that went away, as the link
 * monitor reports them.  Cheap when nothing changed (one non-blocking
 * recv); ti_kernel_wait calls it.  >0: the attachments changed, 0: they
 * did not, <0: -errno (the attachments stay as they were). */
int ti_kernel_tc_refresh(struct ti_kernel *k);
/* news a refresh could not act on yet (retried at the next wait) */
bool ti_kernel_tc_pending(const struct ti_kernel *k);
/* readable when ti_kernel_tc_refresh has news to act on, or -1 */
int ti_kernel_tc_wake_fd(const struct ti_kernel *k);

/* kernel_maps.c: the live backend's map operations */
uint32_t ti_live_map_elems(const struct ti_kernel *k, enum ti_map_id m);
int ti_live_map_read(const struct ti_kernel *k, enum ti_map_id m, uint32_t first, uint32_t n, void *vals);
int ti_live_map_write(const struct ti_kernel *k, enum ti_map_id m, uint32_t first, uint32_t n, const void *vals);
size_t ti_map_stride(enum ti_map_id m); /* one CPU's copy of an element, rounded up to 8 */
/* The summary of table m (flows, sources, drops: bpf/ti_table.h), one
 * element per bucket, for the map operations only: an id past the maps a
 * session shows, which kernel_maps.c keeps the mirror of the entries when
 * it deletes or clears them. */
#define TI_MAP_SUM(m) ((enum ti_map_id)(TI_MAP_COUNT + (m)))

/* kernel_conns.c: the walk's state for o (NULL with conns off) and its
 * counters (conns_expired, conns_evicted) added into a stats array */
int ti_conns_init(struct ti_kernel *k, const struct ti_load_opts *o);
void ti_conns_free(struct ti_kernel *k);
void ti_conns_stats(const struct ti_kernel *k, uint64_t out[TI_STAT_MAX]);

/* kernel_replay.c: a pcap file through the kernel's path in user space */
struct ti_replay;
int ti_replay_open(struct ti_replay **out, const char *path, const struct ti_load_config *load, uint32_t table_entries,
		   uint32_t snaplen, uint32_t max_conns, const struct ti_filter *f, char *why, size_t whylen);
int ti_replay_set_filter(struct ti_replay *r, const struct ti_filter *f);
int ti_replay_next(struct ti_replay *r, uint64_t until_ns, const void **rec, size_t *size, char *why, size_t whylen);
uint64_t ti_replay_clock(const struct ti_replay *r);
uint64_t ti_replay_next_ts(const struct ti_replay *r);
bool ti_replay_ended(const struct ti_replay *r);
int ti_replay_linktype(const struct ti_replay *r);
void ti_replay_stats(const struct ti_replay *r, uint64_t out[TI_STAT_MAX]);
void *ti_replay_map(struct ti_replay *r, enum ti_map_id m, uint32_t *n);
void ti_replay_close(struct ti_replay *r);

#endif /* TI_KERNEL_INT_H */
