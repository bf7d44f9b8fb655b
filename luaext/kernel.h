/* SPDX-License-Identifier: GPL-2.0-only */
/* kernel.h: the kernel layer of tcpinspect.core.  No Lua in it.
 *
 * A struct ti_kernel is one session's source of records, counters and
 * aggregate maps, behind one interface with two backends:
 *
 *   live     (kernel.c, kernel_maps.c, kernel_tc.c, kernel_env.c) the BPF
 *            skeleton, its links and tc attachments, the ring buffer and
 *            the waiter over it and the tc link monitor
 *   replay   (kernel_replay.c) a pcap file run through the BPF program's
 *            own parse, filter, aggregate and sampling code in user space
 *
 * The struct is opaque: only the constructors know which backend they
 * build (ti_kernel_open, ti_kernel_open_replay), and every other function
 * here goes through the backend's table of operations (struct
 * ti_kernel_ops, kernel_int.h).  Its life:
 *
 *	ti_kernel_open(&k, opts, filter, why)  load + write filter + attach,
 *	                                       trying the modes of opts->mode
 *	  or ti_kernel_open_replay(&k, ...)
 *	ti_kernel_set_filter(k, filter)        any number of times
 *	ti_kernel_wait(k, ms)                  any number of times: wait for
 *	ti_kernel_consume(k, ms, fn, ctx, ...)   records, then hand them out
 *	ti_kernel_stats, ti_kernel_map_*       any number of times
 *	ti_kernel_close(k)                     detach, unload, free
 *
 * A new capability (drops, sockets, connections, a recorder) adds an
 * operation that each backend implements, not a test of the backend.
 * Lua bindings (session.c, map.c, core.c) call this API; nothing here
 * calls them.
 */
#ifndef TI_KERNEL_H
#define TI_KERNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/types.h>
#include "tcpinspect.h"

/* The modes, X(ID, name), in auto's order of preference; auto last. */
#define TI_MODES(X)         \
	X(FENTRY, "fentry") \
	X(KPROBE, "kprobe") \
	X(TC, "tc")         \
	X(CGROUP, "cgroup") \
	X(AUTO, "auto")

enum ti_mode {
#define TI_X(id, name) TI_MODE_##id,
	TI_MODES(TI_X)
#undef TI_X
		TI_MODE_COUNT,
};

extern const char *const ti_mode_names[TI_MODE_COUNT + 1]; /* NULL-terminated */

/* The aggregate maps user space reads, X(ID, name). */
#define TI_MAPS(X)              \
	X(FLOWS, "flows")       \
	X(PORTS, "ports")       \
	X(SOURCES, "sources")   \
	X(LEN_HIST, "len_hist") \
	X(DROPS, "drops")

enum ti_map_id {
#define TI_X(id, name) TI_MAP_##id,
	TI_MAPS(TI_X)
#undef TI_X
		TI_MAP_COUNT,
};

#define TI_MAX_DEVS 32
#define TI_MAX_CIDRS 256
/* max_flows' ceiling: flows and sources are per-CPU arrays laid out as
 * set-associative tables (bpf/ti_table.h, rounded up to a power of two),
 * preallocated on every CPU: 144 bytes per entry for the two together
 * (struct ti_flow_entry 80, ti_source_entry 48, and a 32-byte summary per
 * bucket of 4 for each), so 2^20 flows take 144 MB up front per CPU.
 * More is a mistake rather than a wish (Linux's own conntrack table
 * defaults to 262144 entries on a 16 GB machine). */
#define TI_MAX_FLOWS (1 << 20)
#define TI_MAX_CONNS (1 << 22) /* max_conns' ceiling: 144 bytes per entry */

/* A parsed CIDR, in the byte order the LPM trie wants. */
struct ti_cidr {
	uint8_t family; /* 4 or 6 */
	uint8_t plen;
	uint8_t addr[16];
};

/* Everything a filter says, ready to be written to the kernel. */
struct ti_filter {
	struct ti_config cfg; /* match bits, ports, flags, len, ifindex, family */
	struct ti_cidr saddr[TI_MAX_CIDRS];
	struct ti_cidr daddr[TI_MAX_CIDRS];
	struct ti_cidr host[TI_MAX_CIDRS];
	int nsaddr, ndaddr, nhost;
};

/* What a session is scoped to (doc/modes.md, "Scoping to a container"):
 * the segments it sees at all.  Resolved from the netns, container and
 * cgroup options by kernel_env.c. */
struct ti_scope {
	uint32_t netns;	       /* network namespace inode; 0: every namespace */
	char netns_path[256];  /* a file naming it, to enter it (dev names, tc); "" for this one */
	uint64_t cgroup_id;    /* cgroup=: the directory's cgroup id; 0: none */
	uint32_t cgroup_level; /* its depth below the cgroup v2 root */
	int container;	       /* container=PID (its netns above, its cgroup in ti_load_opts.cgroup); 0: none */
	int cgroup_err;	       /* container: its cgroup could not be found (-errno; cgroup mode fails) */
	char cgroup_why[256];
	int err; /* resolving failed for want of something (EACCES ...): -errno; open fails */
	char why[320];
};

/* The load-time options: fixed for the life of a session. */
struct ti_load_opts {
	enum ti_mode mode;
	int family; /* 0 any, 4, 6 */
	uint32_t sample;
	bool events;
	uint32_t aggregates; /* the maps opened: bit 1 << enum ti_map_id (TI_AGG_* in tcpinspect.h) */
	uint32_t ring_size;
	uint32_t max_flows;
	uint32_t wakeup;	  /* records per wakeup */
	uint32_t snaplen;	  /* bytes of each segment in its record (0 .. TI_SNAPLEN_MAX) */
	bool drops;		  /* the drop hook (skb:kfree_skb) too: drop records and counters */
	bool sockets;		  /* the receiving socket's fields (sk_state, sk_cookie, uid, pid, comm) */
	bool conns;		  /* track connections (bpf/ti_conn.h; kernel_conns.c) */
	uint32_t max_conns;	  /* the "conns" table's bound */
	uint64_t idle_timeout_ms; /* a connection idle this long ends ("idle") */
	char cgroup[512]; /* cgroup mode's attach point (cgroup= or the container's); empty: the cgroup v2 root */
	struct ti_scope scope;
	int ndevs; /* tc: 0 means every interface that is up */
	char devs[TI_MAX_DEVS][32];
};

struct ti_kernel; /* opaque: kernel_int.h */

/* Load and attach in o->mode (auto: each mode in turn until one works),
 * then (o->events) the ring's reader and the waiter.  0: *k is the live
 * session's; why holds the reasons the modes tried before failed (empty if
 * none).  <0: -errno, *k is NULL, nothing is left behind, why says what
 * to do. */
int ti_kernel_open(struct ti_kernel **k, const struct ti_load_opts *o, const struct ti_filter *f, char *why,
		   size_t whylen);

/* The replay backend: a pcap file instead of the kernel (kernel_replay.c),
 * with one CPU's copy of each map.  Its clock is the capture's: records'
 * ts are the frames' timestamps, ns since the epoch.  0 or -errno with
 * why, as ti_kernel_open. */
int ti_kernel_open_replay(struct ti_kernel **k, const struct ti_load_opts *o, const struct ti_filter *f,
			  const char *path, uint32_t snaplen, char *why, size_t whylen);

/* Detach, unload, close and free; NULL is a no-op.  A forked child closing
 * its copy only closes its fds (the parent's hooks stay). */
void ti_kernel_close(struct ti_kernel *k);

/* Write f (NULL: match everything) into the idle slot, then make it the
 * active one.  A hook reads the active slot's number once, then that
 * slot's config and tries: it sees the old or the new filter, whole, as
 * long as it ends before the next flip's writes into the slot it read
 * (the next call).  A hook preempted for that long (PREEMPT_RT, where BPF
 * programs run preemptible) can see part of each: back-to-back flips are
 * not atomic for such a hook.  0 or -errno; on failure the active slot is
 * untouched. */
int ti_kernel_set_filter(struct ti_kernel *k, const struct ti_filter *f);

/* Wait up to timeout_ms (0: not at all, -1: forever) for records to hand
 * out, acting on what else wakes the backend meanwhile (live tc: the link
 * monitor attaches to interfaces that appeared and lets go of those that
 * went, also when timeout_ms is 0).  A backend with nothing that could end
 * a wait of -1 returns at once; a replay never waits (its time is the
 * capture's: ti_kernel_consume moves it).  >= 0: TI_WAIT_HOOKS set when
 * the attachments changed (ti_kernel_hooks lists them anew); <0: -errno. */
#define TI_WAIT_HOOKS 1
int ti_kernel_wait(struct ti_kernel *k, int64_t timeout_ms);

/* A record handed out: struct ti_event and its caplen bytes (size bytes in
 * all, valid during the call).  A negative return stops the hand-out after
 * this record (it counts as consumed: it is not handed out again). */
typedef int (*ti_record_fn)(void *ctx, const void *rec, size_t size);

/* Hand out the records pending, in order, until there are none or fn
 * stops it: live, what the ring holds now; a replay, the records of the
 * frames stamped up to timeout_ms of capture time after its clock (-1: to
 * the end of the file), which then reads that time (the clock stays at
 * the last record when fn stops it).  0 (also when fn stopped it) or
 * -errno with why ("reading the ring buffer failed: ...", "replay: ..."). */
int ti_kernel_consume(struct ti_kernel *k, int64_t timeout_ms, ti_record_fn fn, void *ctx, char *why, size_t whylen);

/* Sum the per-CPU counters.  0 or -errno. */
int ti_kernel_stats(const struct ti_kernel *k, uint64_t out[TI_STAT_MAX]);

/* The drop counters (tcpinspect.h: per reason, then TI_DROP_STATS), summed
 * over the CPUs.  0, or -EOPNOTSUPP (why says why: drops off, the hook
 * could not attach, a replay), or -errno. */
int ti_kernel_drop_stats(const struct ti_kernel *k, uint64_t out[TI_DROP_CTR_SLOTS], char *why, size_t whylen);

/* What a session shows of its backend, read when asked. */
struct ti_kernel_info {
	const char *mode;	/* "fentry", "kprobe", "tc", "cgroup" or "replay" */
	const char *netns_path; /* the file the attachments' namespace was entered by ("": here) */
	int fd;			/* readable when ti_kernel_wait would return at once: for an
				 * event loop (session:fd()); -1: none */
	bool capture_clock;	/* time is a capture's: a timeout is capture time, of any length */
	uint64_t clock;		/* now on the records' clock, ns: CLOCK_MONOTONIC or the capture's */
	bool ended;		/* no record will ever come (a replay at the end of its file) */
	bool next_known;	/* next_ts is known (a replay not at its end) */
	uint64_t next_ts;	/* the next frame's time, ns (it may be below clock) */
};
void ti_kernel_describe(const struct ti_kernel *k, struct ti_kernel_info *info);

/* The hooks records come from (session.probes), each as the probe's key
 * ("tcp_v4_rcv", "tc/ingress:lo", "cgroup", "pcap") and its status
 * ("attached ...", "missing: ...", "skipped: ..."); an interface's hook
 * also names it (netns, ifindex, dev; else 0, 0, NULL). */
struct ti_hook_info {
	const char *probe;
	const char *status;
	uint32_t netns;
	uint32_t ifindex;
	const char *dev;
};
typedef void (*ti_hook_fn)(void *ctx, const struct ti_hook_info *h);
void ti_kernel_hooks(const struct ti_kernel *k, ti_hook_fn fn, void *ctx);

/* BPF_PROG_TEST_RUN of the tc or cgroup program on a frame.  0 or -errno;
 * -EOPNOTSUPP (why says so) in the other modes and a replay. */
int ti_kernel_test_run(const struct ti_kernel *k, const void *frame, size_t len, int repeat, int *retval, uint32_t *ns,
		       char *why, size_t whylen);

/* The aggregate maps, merged across CPUs (kernel_maps.c).  An entry is
 * the key (ti_map_key_size: struct ti_flow_key, struct ti_addr_key, or the
 * port / histogram slot as a uint64_t) followed by the value
 * (ti_map_val_size: struct ti_flow_val, ti_port_val, ti_source_val, or a
 * uint64_t count).  All return 0 or -errno; -ENOENT: no such key. */
struct ti_snapshot {
	enum ti_map_id map;
	size_t n, cap; /* entries */
	size_t ksize;  /* the value starts at this offset of an entry */
	size_t esize;  /* bytes per entry */
	uint8_t *e;
};

size_t ti_map_key_size(enum ti_map_id m);
size_t ti_map_val_size(enum ti_map_id m);
int ti_kernel_map_snapshot(const struct ti_kernel *k, enum ti_map_id m, struct ti_snapshot *s);
void ti_snapshot_free(struct ti_snapshot *s);
int ti_kernel_map_lookup(const struct ti_kernel *k, enum ti_map_id m, const void *key, void *val);
int ti_kernel_map_delete(const struct ti_kernel *k, enum ti_map_id m, const void *key);
int ti_kernel_map_clear(const struct ti_kernel *k, enum ti_map_id m);

/* Connections (conns = true; bpf/ti_conn.h, kernel_conns.c).  A
 * connection that ended, or is open, handed to a ti_conn_fn: its key and
 * its state (c->end says how it ended: enum ti_conn_end).  A negative
 * return stops the walk after it. */
typedef int (*ti_conn_fn)(void *ctx, const struct ti_conn_key *key, const struct ti_conn *c);

/* The walk: end what is due at time now (the records' clock, ns; see
 * ti_kernel_info.clock) -- idle past idle_timeout ("idle"), only a SYN past
 * TI_CONN_SYN_TIMEOUT_MS ("idle"), a FIN with nothing after it for
 * TI_CONN_FIN_TIMEOUT_MS ("fin"), and when the table is full the longest
 * idle eighth ("evicted") -- removing each from the table and handing it
 * to fn.  At most TI_CONN_WALK entries per call, continuing where the last
 * call stopped.  all: end every connection now (a replay at the end of its
 * file: "fin" if a FIN came, else "open").  The number handed out, or
 * -errno; -EOPNOTSUPP without conns = true. */
#define TI_CONN_SYN_TIMEOUT_MS 5000
#define TI_CONN_FIN_TIMEOUT_MS 5000
#define TI_CONN_WALK 4096
int ti_kernel_conns_expire(struct ti_kernel *k, uint64_t now, bool all, ti_conn_fn fn, void *ctx);
/* Every connection still open, in the table's order (none ended).  0 or
 * -errno. */
int ti_kernel_conns_each(struct ti_kernel *k, ti_conn_fn fn, void *ctx);
/* A conn-end record (probe TI_PROBE_CONN): its key and state, or -1 when
 * rec is not a whole one. */
int ti_conn_record(const void *rec, size_t size, struct ti_conn_key *key, struct ti_conn *c);

/* Load and attach one mode for real, then undo (features()).  0, or -errno
 * with why filled.  *tcx: tc mode used a tcx link. */
int ti_kernel_probe_mode(enum ti_mode mode, bool *tcx, char *why, size_t whylen);

/* Load and attach the drop hook alone, then undo (features().drops).  0, or
 * -errno with why filled. */
int ti_kernel_probe_drops(char *why, size_t whylen);

/* Drops' names (kernel_env.c), read once per process: the running kernel's
 * enum skb_drop_reason from its BTF (the values differ between kernels),
 * each without its SKB_DROP_REASON_ (or SKB_) prefix.  ti_drop_reason_name:
 * the name of value v, or NULL when the BTF has none (or no BTF).
 * ti_drop_reason_at: the i-th name in value order, NULL past the last.
 * ti_drop_reason_value: name's value (0), or -ENOENT. */
const char *ti_drop_reason_name(uint32_t v);
const char *ti_drop_reason_at(size_t i);
int ti_drop_reason_value(const char *name, uint32_t *v);

/* The receiving socket (kernel_sockets.c).  TCP state names from the
 * running kernel's BTF, without TCP_ ("ESTABLISHED"): the name of value v
 * or NULL, the value of a name or -1, the i-th name or NULL past the
 * last.  ti_sock_owner: the process holding socket inode ino (as ss -p
 * finds it, cached; a miss rescans /proc at most every 100 ms): 0 with
 * *pid and *comm (valid until the next call), or -ENOENT.
 * ti_listen_overflow_reason: the value drops report a listen overflow with
 * (the kernel's, else TI_DROP_LISTEN_OVERFLOW). */
const char *ti_sk_state_name(uint32_t v);
int ti_sk_state_value(const char *name);
const char *ti_sk_state_at(size_t i);
int ti_sock_owner(uint64_t ino, int *pid, const char **comm);
/* ... of the record e's socket: its inode's, or for a connection not yet
 * accepted (ESTABLISHED or CLOSE_WAIT, no inode) its listener's. */
int ti_sock_owner_of(const struct ti_event *e, int *pid, const char **comm);
uint32_t ti_listen_overflow_reason(void);
/* The kernel's skb:kfree_skb names the receiving socket (rx_sk, 6.11+). */
bool ti_kernel_drop_has_rx_sk(void);
/* sockets = true can work here: CAP_PERFMON and the kernel's BTF. */
bool ti_kernel_sockets_ok(void);
/* The kernel function at a drop's location (struct ti_event.location, the
 * address's low 32 bits) from /proc/kallsyms, read once per process: its
 * name into buf, or "0x..." (the address completed from _stext, when
 * kallsyms hides the addresses) . */
void ti_kallsyms_name(uint32_t location, char *buf, size_t len);

/* kernel_env.c */
void ti_kernel_log_init(void);	     /* route libbpf's messages (once per process) */
void ti_kernel_set_verbose(bool on); /* print all of libbpf's log on stderr */
bool ti_kernel_has_btf(void);	     /* /sys/kernel/btf/vmlinux is there */
bool ti_kernel_btf_loads(void);	     /* ... and libbpf can parse it */
bool ti_kernel_has_ringbuf(void);
int ti_cgroup_root(char *buf, size_t len);
/* tcpdump's -Z: become user (initgroups, setgid, setuid, in that order,
 * then checked: the ids took and root cannot be regained).  0; -ENOENT for
 * no such user; -errno (EPERM: not root), each with why. */
int ti_drop_privileges(const char *user, char *why, size_t whylen);

/* Scopes (kernel_env.c).  0; -EINVAL for a value wrong in itself (no such
 * name, path or process; not a network namespace; not a cgroup v2
 * directory): a mistake to raise; any other -errno: the environment failed
 * (EACCES ...).  why says what and what to do. */
int ti_netns_resolve(const char *spec, struct ti_scope *s, char *why, size_t whylen);
int ti_netns_resolve_inode(uint32_t ino, struct ti_scope *s, char *why, size_t whylen);
int ti_cgroup_resolve(const char *path, struct ti_scope *s, char *canon, size_t clen, char *why, size_t whylen);
int ti_container_resolve(int pid, struct ti_scope *s, char *cgroup, size_t clen, char *why, size_t whylen);
uint32_t ti_netns_inode(void); /* the calling thread's */
/* A file that names network namespace ino: /run/netns/NAME first, else some
 * /proc/PID/ns/net.  0, or -ENOENT (path ""). */
int ti_netns_find(uint32_t ino, char *path, size_t len);
/* if_nametoindex inside the network namespace netns_path ("" or NULL: here);
 * 0 when there is no such interface or the namespace cannot be entered. */
unsigned ti_netns_ifindex(const char *netns_path, const char *dev);

#endif /* TI_KERNEL_H */
