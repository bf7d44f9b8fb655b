/* SPDX-License-Identifier: GPL-2.0-only */
/* kernel.h: the kernel layer of tcpinspect.core.  No Lua in it.
 *
 * A struct ti_kernel owns everything one session holds in the kernel: the
 * BPF skeleton (programs, maps, the rodata load options and the .bss filter
 * slots), the links, the tc attachments, and the copies of what each filter
 * slot holds.  Its life:
 *
 *	ti_kernel_init(k)
 *	ti_kernel_open(k, opts, filter, why)   load + write filter + attach,
 *	                                       trying the modes of opts->mode
 *	ti_kernel_set_filter(k, filter)        any number of times
 *	ti_kernel_stats(k, counters)           any number of times
 *	ti_kernel_close(k)                     idempotent
 *
 * ti_kernel_open is ti_kernel_load, ti_kernel_set_filter and
 * ti_kernel_attach in a row, for one mode or each mode of auto in turn.
 *
 * Files: kernel.c (this API), kernel_maps.c (the aggregate maps, merged
 * across CPUs), kernel_tc.c (tc ingress attachments and the sweep of dead
 * owners' filters), kernel_env.c (privileges, kernel facts,
 * libbpf's log, and the one-line explanation of a failure).  Lua bindings
 * (session.c, map.c, core.c) call this API; nothing here calls them.
 */
#ifndef TI_KERNEL_H
#define TI_KERNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/types.h>
#include "tcpinspect.h"

/* The modes, X(ID, name), in auto's order of preference; auto last. */
#define TI_MODES(X) X(FENTRY, "fentry") X(KPROBE, "kprobe") X(TC, "tc") X(CGROUP, "cgroup") X(AUTO, "auto")

enum ti_mode {
#define TI_X(id, name) TI_MODE_##id,
	TI_MODES(TI_X)
#undef TI_X
	TI_MODE_COUNT,
};

extern const char *const ti_mode_names[TI_MODE_COUNT + 1]; /* NULL-terminated */

/* The aggregate maps user space reads, X(ID, name). */
#define TI_MAPS(X) X(FLOWS, "flows") X(PORTS, "ports") X(SOURCES, "sources") X(LEN_HIST, "len_hist")

enum ti_map_id {
#define TI_X(id, name) TI_MAP_##id,
	TI_MAPS(TI_X)
#undef TI_X
	TI_MAP_COUNT,
};

#define TI_MAX_DEVS 32
#define TI_MAX_CIDRS 256
/* max_flows' ceiling: flows and sources are preallocated LRU hashes, about
 * 240 bytes of kernel memory per flow for the two together, so 2^20 flows
 * take about 250 MB up front.  More is a mistake rather than a wish (Linux's
 * own conntrack table defaults to 262144 entries on a 16 GB machine), and
 * 2^24 preallocated gigabytes before failing. */
#define TI_MAX_FLOWS (1 << 20)

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
	uint32_t netns;          /* network namespace inode; 0: every namespace */
	char netns_path[256];    /* a file naming it, to enter it (dev names, tc); "" for this one */
	uint64_t cgroup_id;      /* cgroup=: the directory's cgroup id; 0: none */
	uint32_t cgroup_level;   /* its depth below the cgroup v2 root */
	int container;           /* container=PID (its netns above, its cgroup in ti_load_opts.cgroup); 0: none */
	int cgroup_err;          /* container: its cgroup could not be found (-errno; cgroup mode fails) */
	char cgroup_why[256];
	int err;                 /* resolving failed for want of something (EACCES ...): -errno; open fails */
	char why[320];
};

/* The load-time options: fixed for the life of a session. */
struct ti_load_opts {
	enum ti_mode mode;
	int family; /* 0 any, 4, 6 */
	uint32_t sample;
	bool events;
	bool aggregates;
	uint32_t ring_size;
	uint32_t max_flows;
	uint32_t wakeup;  /* records per wakeup */
	uint32_t snaplen; /* bytes of each segment in its record (0 .. TI_SNAPLEN_MAX) */
	char cgroup[512]; /* cgroup mode's attach point (cgroup= or the container's); empty: the cgroup v2 root */
	struct ti_scope scope;
	int ndevs;        /* tc: 0 means every interface that is up */
	char devs[TI_MAX_DEVS][32];
};

/* One tc ingress attachment (kernel_tc.c). */
struct ti_tc_hook {
	int ifindex;
	uint32_t handle; /* netlink filter handle; 0 when a tcx link is used */
	int link_fd;     /* tcx link, or -1 */
	int state_fd;    /* the netlink filter's state file, flock-ed while we live, or -1 */
	int ns;          /* its network namespace: an index in ti_kernel.tcns */
	uint32_t netns;  /* that namespace's inode */
	char name[32];   /* the interface's name, in its namespace */
	char label[48];  /* session.probes' "tc/ingress:LABEL": the name, "NAME@NETNS" for
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
#define TI_MAX_NETNS 64  /* network namespaces one tc session attaches in */

/* A network namespace a tc session attaches in (kernel_tc.c). */
struct ti_tc_ns {
	uint32_t ino;
	int fd;         /* entered by (setns) around netlink/tcx calls; -1: the process's own */
	int monitor_fd; /* netlink RTMGRP_LINK socket opened inside it, or -1 (dev= given) */
	bool news;      /* the monitor reported changes not acted on yet */
	bool present;   /* found by the last rescan (a session over every namespace) */
};

struct tcpinspect_bpf;
struct bpf_link;
struct ti_replay;

struct ti_kernel {
	struct tcpinspect_bpf *skel;
	enum ti_mode mode;                /* the mode loaded */
	struct bpf_link *links[4];
	int nlinks;
	struct ti_tc_hook tc[TI_MAX_HOOKS];
	int ntc;
	struct ti_tc_skip tc_skipped[TI_MAX_SKIPPED]; /* tc, every interface: not attached */
	int ntc_skipped;
	struct ti_tc_ns tcns[TI_MAX_NETNS];   /* tc: the namespaces attached in; [0] the first */
	int ntcns;
	bool tc_every_netns;              /* tc with no scope and no dev=: every namespace */
	int tc_wake_fd;                   /* epoll over the monitors (and the rescan timer), or -1 */
	int tc_timer_fd;                  /* every namespace: the rescan's timerfd, or -1 */
	int tc_prog_fd;                   /* what the monitor attaches to new interfaces */
	char tc_netns_path[256];          /* the file tc entered a scope's namespace by ("" if not scoped) */
	char tc_netns_note[192];          /* tc with no scope: why only this namespace ("" if every one) */
	char probe_status[2][192];        /* tcp_v4_rcv, tcp_v6_rcv: "attached" or why not */
	char cgroup_path[512];
	uint32_t slot;                    /* the active filter slot */
	struct ti_filter *slot_filter[2]; /* what each slot holds (for deletes) */
	int ncpus;
	struct ti_replay *replay;         /* a replayed capture instead of the kernel (kernel_replay.c) */
	int owner;                        /* the PID that loaded and attached: only it detaches
					   * (a forked child closes its copies of the fds, no more) */
};

void ti_kernel_init(struct ti_kernel *k);

/* Load and attach in o->mode (auto: each mode in turn until one works).
 * 0: attached; why holds the reasons the modes tried before failed (empty
 * if none).  <0: -errno, nothing is left behind, why says what to do. */
int ti_kernel_open(struct ti_kernel *k, const struct ti_load_opts *o, const struct ti_filter *f,
		   char *why, size_t whylen);

/* The steps of ti_kernel_open, for one mode (not auto).  On failure each
 * undoes the whole kernel object (ti_kernel_close). */
int ti_kernel_load(struct ti_kernel *k, const struct ti_load_opts *o, enum ti_mode mode, char *why,
		   size_t whylen);
int ti_kernel_attach(struct ti_kernel *k, const struct ti_load_opts *o, char *why, size_t whylen);

/* Write f (NULL: match everything) into the idle slot, then make it the
 * active one: the kernel sees the old or the new filter, whole.  0 or
 * -errno; on failure the active slot is untouched. */
int ti_kernel_set_filter(struct ti_kernel *k, const struct ti_filter *f);

/* Sum the per-CPU counters.  0 or -errno. */
int ti_kernel_stats(const struct ti_kernel *k, uint64_t out[TI_STAT_MAX]);

int ti_kernel_map_fd(const struct ti_kernel *k, enum ti_map_id map);
int ti_kernel_ring_fd(const struct ti_kernel *k);

/* BPF_PROG_TEST_RUN of the tc or cgroup program on a frame.  0 or -errno;
 * -EOPNOTSUPP in the other modes. */
int ti_kernel_test_run(const struct ti_kernel *k, const void *frame, size_t len, int repeat,
		       int *retval, uint32_t *ns);

/* The aggregate maps, merged across CPUs (kernel_maps.c).  An entry is
 * the key (ti_map_key_size: struct ti_flow_key, struct ti_addr_key, or the
 * port / histogram slot as a uint64_t) followed by the value
 * (ti_map_val_size: struct ti_flow_val, ti_port_val, ti_source_val, or a
 * uint64_t count).  All return 0 or -errno; -ENOENT: no such key. */
struct ti_snapshot {
	enum ti_map_id map;
	size_t n, cap;     /* entries */
	size_t ksize;      /* the value starts at this offset of an entry */
	size_t esize;      /* bytes per entry */
	uint8_t *e;
};

size_t ti_map_key_size(enum ti_map_id m);
size_t ti_map_val_size(enum ti_map_id m);
int ti_kernel_map_snapshot(const struct ti_kernel *k, enum ti_map_id m, struct ti_snapshot *s);
void ti_snapshot_free(struct ti_snapshot *s);
int ti_kernel_map_lookup(const struct ti_kernel *k, enum ti_map_id m, const void *key, void *val);
int ti_kernel_map_delete(const struct ti_kernel *k, enum ti_map_id m, const void *key);
int ti_kernel_map_clear(const struct ti_kernel *k, enum ti_map_id m);

/* tc mode on every interface: attach to interfaces that appeared (or came
 * up) since the last call, and let go of those that went away, as the link
 * monitor reports them.  Cheap when nothing changed (one non-blocking
 * recv); the session calls it at each poll.  >0: the attachments changed,
 * 0: they did not, <0: -errno (the attachments stay as they were). */
int ti_kernel_tc_refresh(struct ti_kernel *k);
/* readable when ti_kernel_tc_refresh has news to act on (the tc link
 * monitor: an interface appeared or went), or -1 */
int ti_kernel_tc_wake_fd(const struct ti_kernel *k);

/* The replay backend (kernel_replay.c): no kernel object at all, a pcap
 * file run through the BPF program's own parse, filter, aggregate and
 * sampling code in user space (bpf/ti_parse.h, bpf/ti_rules.h), with one
 * CPU's copy of each map.  Open it in place of ti_kernel_open: set_filter,
 * stats, the map functions and close then work on it (ring_fd, test_run:
 * -EOPNOTSUPP).  Time is the capture's: ti_kernel_replay_next hands out the
 * records of the frames stamped up to until_ns (UINT64_MAX: all), one at a
 * time (1; *rec valid until the next call), and returns 0 when there is
 * none left before until_ns, having moved the clock to until_ns.  Records
 * are struct ti_event and up to snaplen bytes from the IP header on; ts is
 * the frame's timestamp, ns since the epoch.  <0: -errno with why. */
int ti_kernel_open_replay(struct ti_kernel *k, const struct ti_load_opts *o, const struct ti_filter *f,
			  const char *path, uint32_t snaplen, char *why, size_t whylen);
int ti_kernel_replay_next(struct ti_kernel *k, uint64_t until_ns, const void **rec, size_t *size,
			  char *why, size_t whylen);
uint64_t ti_kernel_replay_clock(const struct ti_kernel *k); /* ns since the epoch */
bool ti_kernel_replay_ended(const struct ti_kernel *k);     /* every frame handled */
uint64_t ti_kernel_replay_next_ts(const struct ti_kernel *k); /* the next frame's ts (if not ended) */
const char *ti_kernel_replay_linktype(const struct ti_kernel *k);

/* Detach and unload everything; idempotent. */
void ti_kernel_close(struct ti_kernel *k);

/* Load and attach one mode for real, then undo (features()).  0, or -errno
 * with why filled.  *tcx: tc mode used a tcx link. */
int ti_kernel_probe_mode(enum ti_mode mode, bool *tcx, char *why, size_t whylen);

/* kernel_env.c */
void ti_kernel_log_init(void); /* route libbpf's messages (once per process) */
void ti_kernel_set_verbose(bool on); /* print all of libbpf's log on stderr */
bool ti_kernel_has_btf(void);     /* /sys/kernel/btf/vmlinux is there */
bool ti_kernel_btf_loads(void);   /* ... and libbpf can parse it */
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
int ti_cgroup_resolve(const char *path, struct ti_scope *s, char *canon, size_t clen, char *why,
		      size_t whylen);
int ti_container_resolve(int pid, struct ti_scope *s, char *cgroup, size_t clen, char *why,
			 size_t whylen);
uint32_t ti_netns_inode(void); /* the calling thread's */
/* A file that names network namespace ino: /run/netns/NAME first, else some
 * /proc/PID/ns/net.  0, or -ENOENT (path ""). */
int ti_netns_find(uint32_t ino, char *path, size_t len);
/* if_nametoindex inside the network namespace netns_path ("" or NULL: here);
 * 0 when there is no such interface or the namespace cannot be entered. */
unsigned ti_netns_ifindex(const char *netns_path, const char *dev);

#endif /* TI_KERNEL_H */
