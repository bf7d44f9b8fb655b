// SPDX-License-Identifier: GPL-2.0-only
/* kernel.c: the kernel layer's interface (kernel.h), which calls through
 * the backend's operations (kernel_int.h), and the live backend: load,
 * filter, attach, wait, read, close.  One skeleton holds every program; before loading, only those of
 * the chosen mode are marked for autoload, and the load-time options go into
 * its rodata.
 *
 *   fentry, kprobe   tcp_v4_rcv / tcp_v6_rcv (a missing one is reported, not fatal)
 *   tc               kernel_tc.c
 *   cgroup           cgroup_skb/ingress link on a cgroup v2 directory
 *   drops = true     and in any mode, skb:kfree_skb (tp_btf, else
 *                    raw_tp): a drop hook that cannot load or attach is
 *                    reported in session.probes, and the session runs
 *                    without it
 *
 * Every failure leaves nothing behind and fills `why` with one line that
 * says what went wrong and what to do (kernel_env.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include "kernel_int.h"
#include "pcapfile.h"
#include "ti_table.h"
#include "tcpinspect.skel.h"

static const char *probe_fn(int i) /* 0: tcp_v4_rcv, 1: tcp_v6_rcv */
{
	return ti_probe_key(i ? TI_PROBE_TCP_V6_RCV : TI_PROBE_TCP_V4_RCV);
}

static const struct ti_kernel_ops live_ops;

void ti_kernel_init(struct ti_kernel *k)
{
	memset(k, 0, sizeof(*k));
	k->ops = &live_ops;
	k->epfd = -1;
	for (int i = 0; i < TI_MAX_HOOKS; i++)
		k->tc[i].link_fd = k->tc[i].state_fd = -1;
	k->tc_wake_fd = k->tc_timer_fd = -1;
	k->owner = (int)getpid();
}

static void live_close(struct ti_kernel *k);

/* ---- load ------------------------------------------------------------------------- */

/* TCPINSPECT_HIDE_FUNCS="tcp_v6_rcv": act as if the kernel lacked these
 * functions.  A test hook: it lets the specs prove the gap report on kernels
 * that have both. */
static bool hidden_for_test(const char *name)
{
	const char *h = getenv("TCPINSPECT_HIDE_FUNCS");

	return h && strstr(h, name);
}

/* Choose which programs load: only those of the mode, and of the probed
 * functions the kernel has.  Returns 0 or -ENOENT with why filled. */
static int select_programs(struct ti_kernel *k, const struct ti_load_opts *o, enum ti_mode mode, bool tc_here_only,
			   char *why, size_t whylen)
{
	struct tcpinspect_bpf *sk = k->skel;
	struct bpf_program *prog;
	struct bpf_program *const fe[2] = { sk->progs.ti_fentry_v4, sk->progs.ti_fentry_v6 };
	struct bpf_program *const kp[2] = { sk->progs.ti_kprobe_v4, sk->progs.ti_kprobe_v6 };
	struct btf *btf = NULL;
	int n = 0;

	bpf_object__for_each_program(prog, sk->obj) bpf_program__set_autoload(prog, false);
	/* the receiving socket: read from the kernel's structures (CAP_PERFMON) */
	if (o->sockets && !ti_can_read_kernel()) {
		snprintf(why, whylen,
			 "sockets = true reads the receiving socket from the kernel, which needs CAP_PERFMON (or "
			 "CAP_SYS_ADMIN): run as root, or open without sockets");
		return -EPERM;
	}
	switch (mode) {
	case TI_MODE_TC:
		if (o->sockets) { /* the lookup, in each device's namespace */
			bpf_program__set_autoload(sk->progs.ti_tc_ingress_sk, true);
			k->tc_sk_every_netns = !o->scope.netns && !o->ndevs && !tc_here_only;
			return 0;
		}
		/* no scope, no dev=: every network namespace, each segment
		 * with its device's (read from the kernel: CAP_PERFMON) */
		bpf_program__set_autoload(!o->scope.netns && !o->ndevs && !tc_here_only ? sk->progs.ti_tc_ingress_ns
											: sk->progs.ti_tc_ingress,
					  true);
		return 0;
	case TI_MODE_CGROUP:
		/* the socket's netns takes CAP_PERFMON: a program of its own */
		bpf_program__set_autoload(o->sockets		 ? sk->progs.ti_cgroup_ingress_sk
					  : ti_can_read_kernel() ? sk->progs.ti_cgroup_ingress_ns
								 : sk->progs.ti_cgroup_ingress,
					  true);
		return 0;
	default: break;
	}
	/* fentry finds its targets in the kernel's BTF: without it, say that */
	if (mode == TI_MODE_FENTRY && !ti_kernel_has_btf())
		return ti_explain(-ENOENT, why, whylen, mode, "finding the probe targets");
	for (int i = 0; i < 2; i++) {
		bool want = o->family == 0 || o->family == (i ? 6 : 4);
		bool have = !hidden_for_test(probe_fn(i)) &&
			    (mode == TI_MODE_FENTRY ? ti_kernel_btf_has_func(&btf, probe_fn(i))
						    : ti_kallsyms_has(probe_fn(i)));

		if (!want)
			snprintf(k->probe_status[i], sizeof(k->probe_status[i]), "not requested (family)");
		else if (!have)
			snprintf(k->probe_status[i], sizeof(k->probe_status[i]), "missing: %s is not in this kernel%s",
				 probe_fn(i), i ? " (IPv6 disabled or ipv6 module not loaded?)" : "");
		if (want && have) {
			bpf_program__set_autoload(mode == TI_MODE_FENTRY ? fe[i] : kp[i], true);
			n++;
		}
	}
	/* sockets = true: the socket-side hook and the returns (bpf/tcpinspect.bpf.c) */
	if (n && o->sockets) {
		const char *side = "sk_filter_trim_cap";
		struct bpf_program *const fx[2] = { sk->progs.ti_fexit_v4, sk->progs.ti_fexit_v6 };
		struct bpf_program *const kr[2] = { sk->progs.ti_kretprobe_v4, sk->progs.ti_kretprobe_v6 };

		if (mode == TI_MODE_FENTRY ? !ti_kernel_btf_has_func(&btf, side) : !ti_kallsyms_has(side)) {
			btf__free(btf);
			snprintf(why, whylen,
				 "%s: sockets = true needs the socket-side hook %s, which is not in this kernel; "
				 "try mode='tc' or 'cgroup'",
				 ti_mode_names[mode], side);
			return -ENOENT;
		}
		bpf_program__set_autoload(mode == TI_MODE_FENTRY ? sk->progs.ti_fentry_sock : sk->progs.ti_kprobe_sock,
					  true);
		for (int i = 0; i < 2; i++)
			if (bpf_program__autoload(mode == TI_MODE_FENTRY ? fe[i] : kp[i]))
				bpf_program__set_autoload(mode == TI_MODE_FENTRY ? fx[i] : kr[i], true);
	}
	btf__free(btf);
	if (!n) {
		snprintf(why, whylen, "%s: no probe target: %s; %s", ti_mode_names[mode],
			 o->family == 6 ? k->probe_status[1] : k->probe_status[0], "try mode='tc' or 'cgroup'");
		return -ENOENT;
	}
	return 0;
}

void ti_set_load_config(struct ti_load_config *c, const struct ti_load_opts *o, enum ti_mode mode)
{
	uint64_t wakeup_bytes;

	memset(c, 0, sizeof(*c));
	c->sample = o->sample;
	c->events = o->events;
	c->aggregates = o->aggregates;
	/* wakeup records of the largest size a segment makes (the compact
	 * one with snaplen 0 and sockets off); at most half the ring waits */
	wakeup_bytes = (uint64_t)o->wakeup *
		       (o->snaplen || o->sockets ? ti_record_size(o->snaplen) : TI_RING_SPACE(TI_EVENT_COMPACT));
	c->wakeup_bytes = (uint32_t)(wakeup_bytes < o->ring_size / 2 ? wakeup_bytes : o->ring_size / 2);
	c->family = (uint32_t)o->family;
	c->table_mask = ti_table_buckets(o->max_flows) - 1;
	c->snaplen = o->snaplen;
	/* The netns each event reports: the function probes read skb->dev's,
	 * cgroup reads the socket's (with CAP_PERFMON, else 0), and tc's
	 * attachments all live in one namespace: the scope's, or ours. */
	c->netns = mode != TI_MODE_TC ? 0 : o->scope.netns ? o->scope.netns : ti_netns_inode();
	/* The scope (doc/modes.md, "Scoping to a container"): tc is scoped by
	 * where it attaches, cgroup mode by its cgroup (container=) or, given
	 * netns=, by the socket's netns; the function probes compare. */
	if (mode == TI_MODE_FENTRY || mode == TI_MODE_KPROBE) {
		c->scope_netns = o->scope.netns;
		c->cgroup_id = o->scope.cgroup_id;
		c->cgroup_level = o->scope.cgroup_level;
	} else if (mode == TI_MODE_CGROUP && !o->scope.container) {
		c->scope_netns = o->scope.netns;
	}
	/* drops are scoped in every mode by what the drop hook reads: the
	 * device's netns, and the socket's cgroup (only the tc and cgroup
	 * programs never read cgroup_id: tc refuses a cgroup scope, cgroup
	 * mode is scoped by where it attaches) */
	c->drops = o->drops;
	c->sockets = o->sockets;
	c->conns = o->conns;
	c->overflow_reason = o->drops && o->sockets ? ti_listen_overflow_reason() : 0;
	/* The kernel addresses (bpf/tcpinspect.h), from /proc/kallsyms (one
	 * pass per process), only where the loaded program reads them: the
	 * function probes' copy of page fragments (snaplen or a filter on the
	 * payload, which set_filter may ask for later), and a listen
	 * overflow's location.  Replay (TI_MODE_AUTO) has neither. */
	if (mode == TI_MODE_FENTRY || mode == TI_MODE_KPROBE) {
		c->page_offset_base = ti_kallsyms_addr(TI_KSYM_PAGE_OFFSET_BASE);
		c->vmemmap_base = ti_kallsyms_addr(TI_KSYM_VMEMMAP_BASE);
	}
	if (mode != TI_MODE_AUTO && o->drops && o->sockets) {
		c->conn_request = ti_kallsyms_addr(TI_KSYM_TCP_CONN_REQUEST);
		c->check_req = ti_kallsyms_addr(TI_KSYM_TCP_CHECK_REQ);
	}
	if (o->drops) {
		c->drop_netns = o->scope.netns;
		c->cgroup_id = o->scope.cgroup_id;
		c->cgroup_level = o->scope.cgroup_level;
	}
}

/* The drop hooks, in order of preference: skb:kfree_skb as a BTF
 * tracepoint, else as a raw one (bpf/tcpinspect.bpf.c). */
#define TI_DROP_HOOKS 2
static const char *const drop_hook_names[TI_DROP_HOOKS] = { "tp_btf", "raw_tp" };

static struct bpf_program *drop_prog(const struct tcpinspect_bpf *sk, int i)
{
	/* tp_btf with rx_sk where the kernel has it (select_drops) */
	if (i == 0 && bpf_program__autoload(sk->progs.ti_drop_btf_sk))
		return sk->progs.ti_drop_btf_sk;
	return i == 0 ? sk->progs.ti_drop_btf : sk->progs.ti_drop_raw;
}

/* The drop hook loaded, or -1. */
static int drop_loaded(const struct ti_kernel *k)
{
	for (int i = 0; k->skel && i < TI_DROP_HOOKS; i++)
		if (bpf_program__autoload(drop_prog(k->skel, i)))
			return i;
	return -1;
}

/* The first and last drop hook to try: both, or the one that
 * TCPINSPECT_DROP_HOOK names ("tp_btf", "raw_tp": a test hook, so that the
 * specs run the fallback on kernels that take the first). */
static void drop_hook_range(int *first, int *last)
{
	const char *h = getenv("TCPINSPECT_DROP_HOOK");

	*first = 0;
	*last = TI_DROP_HOOKS - 1;
	for (int i = 0; h && i < TI_DROP_HOOKS; i++)
		if (!strcmp(h, drop_hook_names[i]))
			*first = *last = i;
}

/* drops = true: load drop hook `hook` too (past `last`: none, the kernel
 * refused them all, `refused` says how), if this process may (CAP_PERFMON
 * and the kernel's BTF, for the CO-RE reads); else say why in
 * drop_status. */
static void select_drops(struct ti_kernel *k, const struct ti_load_opts *o, int hook, int last, const char *refused)
{
	k->drop_status[0] = '\0';
	if (!o->drops)
		return;
	if (!ti_can_read_kernel())
		snprintf(
			k->drop_status, sizeof(k->drop_status),
			"not attached: the drop hook (skb:kfree_skb) needs CAP_PERFMON (or CAP_SYS_ADMIN); run as root");
	else if (!ti_kernel_has_btf())
		snprintf(
			k->drop_status, sizeof(k->drop_status),
			"not attached: the drop hook (skb:kfree_skb) needs the kernel's BTF (CONFIG_DEBUG_INFO_BTF=y)");
	else if (hook > last)
		snprintf(k->drop_status, sizeof(k->drop_status),
			 "not attached: the kernel refused the drop hook: %.200s", refused);
	else if (hook == 0 && ti_kernel_drop_has_rx_sk())
		bpf_program__set_autoload(k->skel->progs.ti_drop_btf_sk, true);
	else
		bpf_program__set_autoload(drop_prog(k->skel, hook), true);
}

/* Can mode honour the session's scope?  0, or -errno with why filled. */
static int scope_supported(const struct ti_load_opts *o, enum ti_mode mode, char *why, size_t whylen)
{
	const struct ti_scope *sc = &o->scope;

	if (mode == TI_MODE_TC && sc->cgroup_id) {
		snprintf(
			why, whylen,
			"tc: tc runs before the socket lookup and cannot tell a segment's cgroup (cgroup=); use mode='cgroup', 'fentry' or 'kprobe'");
		return -EOPNOTSUPP;
	}
	if (mode == TI_MODE_CGROUP && sc->container && sc->cgroup_err) {
		snprintf(why, whylen, "cgroup: option 'container': %s", sc->cgroup_why);
		return sc->cgroup_err;
	}
	if (mode == TI_MODE_CGROUP && !sc->container && sc->netns && !ti_can_read_kernel()) {
		snprintf(
			why, whylen,
			"cgroup: scoping cgroup mode to a network namespace (netns=) reads each socket's namespace, which needs CAP_PERFMON (or CAP_SYS_ADMIN); run as root, or use mode='tc', or scope by cgroup= or container=");
		return -EPERM;
	}
	return 0;
}

/* A set-associative table (flows, sources, drops: bpf/ti_table.h) and its
 * summary, sized for max_flows when on: buckets * TI_TABLE_WAYS entries
 * and one summary element per bucket; one element each when off, never
 * written, so the session pays no memory for it. */
static void size_table(struct bpf_map *table, struct bpf_map *sum, bool on, uint32_t max_flows)
{
	uint32_t buckets = ti_table_buckets(max_flows);

	bpf_map__set_max_entries(table, on ? buckets * TI_TABLE_WAYS : 1);
	bpf_map__set_max_entries(sum, on ? buckets : 1);
}

static int live_load(struct ti_kernel *k, const struct ti_load_opts *o, enum ti_mode mode, char *why, size_t whylen)
{
	struct tcpinspect_bpf *sk;
	bool tc_here_only = false;
	char drops_refused[200] = "";
	int drop_hook, drop_last;
	int err;

	ti_libbpf_log_clear();
	memset(k->probe_status, 0, sizeof(k->probe_status));
	if ((err = ti_check_privileges(mode, why, whylen)))
		return err;
	if ((err = scope_supported(o, mode, why, whylen)))
		return err;
	if (mode == TI_MODE_KPROBE && !ti_have_kprobes()) {
		snprintf(
			why, whylen,
			"kprobe: this kernel has no kprobes (CONFIG_KPROBES/CONFIG_KPROBE_EVENTS off); try mode='tc' or 'cgroup'");
		return -EOPNOTSUPP;
	}
	if (!k->ncpus) {
		k->ncpus = libbpf_num_possible_cpus();
		if (k->ncpus <= 0) {
			err = k->ncpus ? k->ncpus : -EINVAL;
			k->ncpus = 0;
			snprintf(why, whylen,
				 "%s: cannot read the number of possible CPUs (/sys/devices/system/cpu/possible): %s",
				 ti_mode_names[mode], strerror(-err));
			return err;
		}
	}
	k->owner = (int)getpid();
	/* tc with no scope and no dev= attaches in every network namespace,
	 * with the program that reads each segment's (CAP_PERFMON); without
	 * it, or when the verifier refuses it, in this namespace only, and
	 * session.probes says why */
	k->tc_netns_note[0] = '\0';
	drop_hook_range(&drop_hook, &drop_last);
	if (mode == TI_MODE_TC && !o->scope.netns && !o->ndevs && !ti_can_read_kernel()) {
		snprintf(
			k->tc_netns_note, sizeof(k->tc_netns_note),
			"not attached in the other network namespaces: telling their segments apart reads the kernel's sk_buff, which needs CAP_PERFMON (run as root)");
		tc_here_only = true;
	}
again:
	sk = k->skel = tcpinspect_bpf__open();
	if (!sk)
		return ti_explain(-errno, why, whylen, mode, "opening the BPF object");
	k->mode = mode;
	bpf_map__set_max_entries(sk->maps.events, o->ring_size);
	/* an aggregate map that is off (open's aggregates) has one entry,
	 * never written: the session pays no memory for it */
	size_table(sk->maps.flows, sk->maps.flows_sum, o->aggregates & TI_AGG_FLOWS, o->max_flows);
	size_table(sk->maps.sources, sk->maps.sources_sum, o->aggregates & TI_AGG_SOURCES, o->max_flows);
	if (!(o->aggregates & TI_AGG_PORTS))
		bpf_map__set_max_entries(sk->maps.ports, 1);
	if (!(o->aggregates & TI_AGG_LEN_HIST))
		bpf_map__set_max_entries(sk->maps.len_hist, 1);
	/* drops' table as large as flows' (one table_mask), only when drops
	 * are asked for and aggregated: else one entry, never written */
	size_table(sk->maps.drops, sk->maps.drops_sum, o->drops && (o->aggregates & TI_AGG_DROPS), o->max_flows);
	/* conns' table: max_conns entries with conns = true, else one, never written */
	bpf_map__set_max_entries(sk->maps.conns, o->conns ? o->max_conns : 1);
	ti_set_load_config((struct ti_load_config *)&sk->rodata->ti_load, o, mode);
	if ((err = select_programs(k, o, mode, tc_here_only, why, whylen)))
		goto fail;
	select_drops(k, o, drop_hook, drop_last, drops_refused);
	if ((err = tcpinspect_bpf__load(sk))) {
		ti_explain(err, why, whylen, mode, "loading the BPF programs");
		/* a drop hook refused: the next one, or the session goes on
		 * without one */
		if (drop_loaded(k) >= 0) {
			snprintf(drops_refused, sizeof(drops_refused), "%s", why);
			drop_hook++;
			tcpinspect_bpf__destroy(sk);
			k->skel = NULL;
			ti_libbpf_log_clear();
			goto again;
		}
		if (mode == TI_MODE_TC && !tc_here_only) {
			snprintf(
				k->tc_netns_note, sizeof(k->tc_netns_note),
				"not attached in the other network namespaces: the kernel refused the program that reads each segment's namespace (%.60s)",
				strerror(-err));
			tc_here_only = true;
			tcpinspect_bpf__destroy(sk);
			k->skel = NULL;
			goto again;
		}
		goto fail;
	}
	return 0;
fail:
	live_close(k);
	return err;
}

/* ---- the filter -------------------------------------------------------------------- */

/* Add (or, with del, remove) n CIDRs of one slot in an LPM trie.  Adding
 * stops at the first failure and returns -errno.  Removing goes through all
 * of them and returns the last -errno other than ENOENT (an entry that is
 * not there is removed already), or 0. */
static int lpm_write(int fd, uint8_t slot, const struct ti_cidr *c, int n, bool del)
{
	uint8_t one = 1;
	int err = 0;

	for (int i = 0; i < n; i++) {
		struct ti_lpm_key key = { .prefixlen = 16u + c[i].plen, .slot = slot, .family = c[i].family };

		memcpy(key.addr, c[i].addr, 16);
		if (del) {
			if (bpf_map_delete_elem(fd, &key) && errno != ENOENT)
				err = -errno;
		} else if (bpf_map_update_elem(fd, &key, &one, BPF_ANY)) {
			return -errno;
		}
	}
	return err;
}

/* Remove every entry f describes from the idle slot's tries: 0 or -errno. */
static int lpm_delete_all(const int fds[3], uint8_t slot, const struct ti_filter *f)
{
	int e1 = lpm_write(fds[0], slot, f->saddr, f->nsaddr, true);
	int e2 = lpm_write(fds[1], slot, f->daddr, f->ndaddr, true);
	int e3 = lpm_write(fds[2], slot, f->host, f->nhost, true);

	return e1 ? e1 : e2 ? e2 : e3;
}

/* Transactional: the active slot is never touched before the flip, and
 * k->slot_filter[idle] always lists a superset of the entries the idle
 * slot's tries hold, so that the next call can empty it.  A failure leaves
 * the active filter in force and the idle slot empty (or, when even the
 * rollback's deletes fail, described by the attempted filter, whose
 * entries the next call deletes first). */
static int live_set_filter(struct ti_kernel *k, const struct ti_filter *f)
{
	struct tcpinspect_bpf *sk = k->skel;
	uint8_t slot = (uint8_t)(k->slot ^ 1);
	struct ti_filter *old = k->slot_filter[slot], *copy;
	int fds[3], err;

	if (!sk || !sk->bss)
		return -EBADF; /* not loaded, or its .bss was not mapped */
	fds[0] = bpf_map__fd(sk->maps.saddr_lpm);
	fds[1] = bpf_map__fd(sk->maps.daddr_lpm);
	fds[2] = bpf_map__fd(sk->maps.host_lpm);
	copy = calloc(1, sizeof(*copy));
	if (!copy)
		return -ENOMEM;
	if (f)
		*copy = *f;
	/* empty the idle slot; if that fails, `old` still describes it */
	if (old && (err = lpm_delete_all(fds, slot, old))) {
		free(copy);
		return err;
	}
	free(old);
	k->slot_filter[slot] = NULL; /* the idle slot is empty */
	if ((err = lpm_write(fds[0], slot, copy->saddr, copy->nsaddr, false)) ||
	    (err = lpm_write(fds[1], slot, copy->daddr, copy->ndaddr, false)) ||
	    (err = lpm_write(fds[2], slot, copy->host, copy->nhost, false))) {
		/* roll back what was written; an entry that cannot be deleted
		 * stays listed in the copy, for the next call to delete */
		if (lpm_delete_all(fds, slot, copy))
			k->slot_filter[slot] = copy;
		else
			free(copy);
		return err;
	}
	sk->bss->ti_cfg[slot] = copy->cfg;
	__sync_synchronize();
	sk->bss->ti_cfg_slot = slot;
	__sync_synchronize();
	k->slot = slot;
	k->slot_filter[slot] = copy;
	return 0;
}

/* ---- attach ----------------------------------------------------------------------- */

static int attach_probes(struct ti_kernel *k, bool fentry, struct bpf_program *const progs[2], char *why, size_t whylen)
{
	for (int i = 0; i < 2; i++) {
		struct bpf_link *l;

		if (!bpf_program__autoload(progs[i]))
			continue;
		l = fentry ? bpf_program__attach_trace(progs[i])
			   : bpf_program__attach_kprobe(progs[i], false, probe_fn(i));
		if (!l)
			return ti_explain(-errno, why, whylen, fentry ? TI_MODE_FENTRY : TI_MODE_KPROBE, probe_fn(i));
		k->links[k->nlinks++] = l;
		snprintf(k->probe_status[i], sizeof(k->probe_status[i]), "attached");
	}
	return 0;
}

/* sockets = true in fentry/kprobe: the socket-side hook and the returns
 * of tcp_v{4,6}_rcv, attached before the entries, so that no segment waits
 * for a hook that is not there yet. */
static int attach_socket_side(struct ti_kernel *k, char *why, size_t whylen)
{
	struct tcpinspect_bpf *sk = k->skel;
	struct bpf_program *const progs[] = { sk->progs.ti_fentry_sock,	 sk->progs.ti_kprobe_sock,
					      sk->progs.ti_fexit_v4,	 sk->progs.ti_fexit_v6,
					      sk->progs.ti_kretprobe_v4, sk->progs.ti_kretprobe_v6 };

	for (size_t i = 0; i < sizeof(progs) / sizeof(progs[0]); i++) {
		struct bpf_link *l;

		if (!bpf_program__autoload(progs[i]))
			continue;
		l = bpf_program__attach(progs[i]);
		if (!l)
			return ti_explain(-errno, why, whylen, k->mode, bpf_program__section_name(progs[i]));
		k->links[k->nlinks++] = l;
	}
	return 0;
}

/* The cgroup program select_programs chose. */
static struct bpf_program *cgroup_prog(const struct ti_kernel *k)
{
	if (bpf_program__autoload(k->skel->progs.ti_cgroup_ingress_sk))
		return k->skel->progs.ti_cgroup_ingress_sk;
	return bpf_program__autoload(k->skel->progs.ti_cgroup_ingress_ns) ? k->skel->progs.ti_cgroup_ingress_ns
									  : k->skel->progs.ti_cgroup_ingress;
}

/* The tc program select_programs chose. */
static struct bpf_program *tc_prog(const struct ti_kernel *k)
{
	if (bpf_program__autoload(k->skel->progs.ti_tc_ingress_sk))
		return k->skel->progs.ti_tc_ingress_sk;
	return bpf_program__autoload(k->skel->progs.ti_tc_ingress_ns) ? k->skel->progs.ti_tc_ingress_ns
								      : k->skel->progs.ti_tc_ingress;
}

static int attach_cgroup(struct ti_kernel *k, const struct ti_load_opts *o, char *why, size_t whylen)
{
	struct bpf_link *l;
	int fd, err;

	if (o->cgroup[0])
		snprintf(k->cgroup_path, sizeof(k->cgroup_path), "%s", o->cgroup);
	else if ((err = ti_cgroup_root(k->cgroup_path, sizeof(k->cgroup_path)))) {
		snprintf(
			why, whylen,
			"cgroup: no cgroup v2 hierarchy is mounted in this mount namespace (`ip netns exec` remounts /sys); give cgroup=PATH, or mount -t cgroup2 none /sys/fs/cgroup");
		return err;
	}
	fd = open(k->cgroup_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		snprintf(why, whylen, "cgroup: cannot open '%s': %s; give cgroup= a cgroup v2 directory",
			 k->cgroup_path, strerror(errno));
		return err;
	}
	l = bpf_program__attach_cgroup(cgroup_prog(k), fd);
	err = -errno;
	close(fd);
	if (!l)
		return ti_explain(err, why, whylen, TI_MODE_CGROUP, "attaching to the cgroup");
	k->links[k->nlinks++] = l;
	return 0;
}

/* The drop hook, if one loaded: a failure to attach it is reported in
 * session.probes, not fatal. */
static void attach_drops(struct ti_kernel *k)
{
	int i = drop_loaded(k);

	if (i < 0)
		return;
	k->drop_link = bpf_program__attach(drop_prog(k->skel, i));
	if (!k->drop_link)
		snprintf(k->drop_status, sizeof(k->drop_status), "not attached: attaching %s/kfree_skb failed: %s",
			 drop_hook_names[i], strerror(errno));
	else
		snprintf(k->drop_status, sizeof(k->drop_status), "attached (%s)", drop_hook_names[i]);
}

static int live_attach(struct ti_kernel *k, const struct ti_load_opts *o, char *why, size_t whylen)
{
	struct tcpinspect_bpf *sk = k->skel;
	int err;

	if (!sk)
		return -EBADF;
	switch (k->mode) {
	case TI_MODE_FENTRY: {
		struct bpf_program *const p[2] = { sk->progs.ti_fentry_v4, sk->progs.ti_fentry_v6 };

		err = attach_socket_side(k, why, whylen);
		if (!err)
			err = attach_probes(k, true, p, why, whylen);
		break;
	}
	case TI_MODE_KPROBE: {
		struct bpf_program *const p[2] = { sk->progs.ti_kprobe_v4, sk->progs.ti_kprobe_v6 };

		err = attach_socket_side(k, why, whylen);
		if (!err)
			err = attach_probes(k, false, p, why, whylen);
		break;
	}
	case TI_MODE_TC:
		k->tc_every_netns = bpf_program__autoload(sk->progs.ti_tc_ingress_ns) ||
				    (bpf_program__autoload(sk->progs.ti_tc_ingress_sk) && k->tc_sk_every_netns);
		err = ti_tc_attach(k, o, bpf_program__fd(tc_prog(k)), why, whylen);
		break;
	case TI_MODE_CGROUP: err = attach_cgroup(k, o, why, whylen); break;
	default: err = -EINVAL;
	}
	if (err) {
		live_close(k);
		return err;
	}
	attach_drops(k);
	return 0;
}

/* ---- open: the three steps, in one mode or each of auto's ------------------------- */

static int open_mode(struct ti_kernel *k, const struct ti_load_opts *o, enum ti_mode mode, const struct ti_filter *f,
		     char *why, size_t whylen)
{
	int err;

	if ((err = live_load(k, o, mode, why, whylen)))
		return err;
	if ((err = live_set_filter(k, f))) {
		ti_explain(err, why, whylen, mode, "writing the filter");
		live_close(k);
		return err;
	}
	return live_attach(k, o, why, whylen);
}

static int live_ring_record(void *ctx, void *data, size_t size);

/* The waiter: one epoll fd over the ring's own (records pending) and the
 * tc link monitor (an interface appeared or went: attached at once, not at
 * the next record).  It is what ti_kernel_wait sleeps in and what an event
 * loop watches (ti_kernel_info.fd). */
enum { WAKE_RING = 1, WAKE_LINKS = 2 };

static int waiter_open(struct ti_kernel *k)
{
	int fds[2] = { k->rb ? ring_buffer__epoll_fd(k->rb) : -1, ti_kernel_tc_wake_fd(k) };
	uint32_t tags[2] = { WAKE_RING, WAKE_LINKS };

	if (fds[0] < 0 && fds[1] < 0)
		return 0;
	k->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (k->epfd < 0)
		return -errno;
	for (int i = 0; i < 2; i++) {
		struct epoll_event ev = { .events = EPOLLIN, .data.u32 = tags[i] };

		if (fds[i] >= 0 && epoll_ctl(k->epfd, EPOLL_CTL_ADD, fds[i], &ev))
			return -errno;
	}
	return 0;
}

/* open_mode in o->mode or each of auto's, then the ring's reader and the
 * waiter; on failure k is released. */
int ti_kernel_open_live(struct ti_kernel *k, const struct ti_load_opts *o, const struct ti_filter *f, char *why,
			size_t whylen)
{
	enum ti_mode first = o->mode == TI_MODE_AUTO ? TI_MODE_FENTRY : o->mode;
	enum ti_mode last = o->mode == TI_MODE_AUTO ? TI_MODE_CGROUP : o->mode;
	size_t used = 0;
	char one[1024];
	int err = -EINVAL;

	if (o->mode == TI_MODE_AUTO || o->mode == TI_MODE_TC)
		ti_tc_sweep_stale();
	why[0] = '\0';
	for (int m = first; m <= (int)last; m++) {
		err = open_mode(k, o, (enum ti_mode)m, f, one, sizeof(one));
		if (!err)
			break;
		if (used < whylen)
			used += (size_t)snprintf(why + used, whylen - used, "%s%s", used ? "\n" : "", one);
	}
	if (err)
		return err;
	if (o->events || o->conns) { /* conn-end records come on the ring too */
		k->rb = ring_buffer__new(bpf_map__fd(k->skel->maps.events), live_ring_record, k, NULL);
		if (!k->rb) {
			err = -errno;
			live_close(k);
			snprintf(why, whylen, "creating the ring buffer reader failed: %s", strerror(-err));
			return err;
		}
	}
	if ((err = waiter_open(k))) {
		live_close(k);
		snprintf(why, whylen, "creating the session's epoll fd failed: %s", strerror(-err));
		return err;
	}
	return 0;
}

/* ---- waiting and reading ------------------------------------------------------------ */

/* Wait up to timeout ms (0: not at all; -1: forever) for records or an
 * interface change, which is acted on here and at every call (news that
 * came while nobody waited). */
static int live_wait(struct ti_kernel *k, int64_t timeout_ms)
{
	struct epoll_event ev[2];
	int timeout = timeout_ms < 0 ? -1 : timeout_ms > 0x7fffffff ? 0x7fffffff : (int)timeout_ms;
	int changed = 0, n;

	/* no ring: -1 would wait for nothing but an interface change */
	if (timeout == 0 || (!k->rb && timeout < 0) || k->epfd < 0 || ti_kernel_tc_pending(k)) {
		changed = ti_kernel_tc_refresh(k) > 0 ? TI_WAIT_HOOKS : 0;
		if (timeout == 0 || (!k->rb && timeout < 0))
			return changed;
		if (k->epfd < 0) {
			poll(NULL, 0, timeout);
			return changed;
		}
	}
	/* Otherwise the wait itself tells of news: the link monitor's fd is
	 * in the waiter, level-triggered, so news that came while nobody
	 * waited makes it return at once (WAKE_LINKS), and a wait that ends
	 * with the ring ready costs one syscall, not two. */
	n = epoll_wait(k->epfd, ev, 2, timeout);
	if (n < 0)
		return -errno;
	for (int i = 0; i < n; i++)
		if (ev[i].data.u32 == WAKE_LINKS && ti_kernel_tc_refresh(k) > 0)
			changed = TI_WAIT_HOOKS;
	return changed;
}

/* libbpf's sample callback: a negative return stops ring_buffer__consume
 * past this record. */
static int live_ring_record(void *ctx, void *data, size_t size)
{
	struct ti_kernel *k = ctx;
	int rc = k->rec_fn(k->rec_ctx, data, size);

	if (rc < 0)
		k->rec_stopped = true;
	return rc;
}

static int live_consume(struct ti_kernel *k, int64_t timeout_ms, ti_record_fn fn, void *ctx, char *why, size_t whylen)
{
	int n;

	if (!k->rb)
		return 0;
	k->rec_fn = fn;
	k->rec_ctx = ctx;
	k->rec_stopped = false;
	n = ring_buffer__consume(k->rb);
	k->rec_fn = NULL;
	if (k->rec_stopped || n >= 0 || n == -EINTR)
		return 0;
	snprintf(why, whylen, "reading the ring buffer failed: %s", strerror(-n));
	return n;
}

/* Sum the CPUs' values of entries 0..n-1 of per-CPU array fd into out,
 * the last entry first: the kernel counts seen, then filtered or matched,
 * then the rest, so under live traffic reading downstream counters first
 * keeps seen >= filtered + matched >= ... instead of the reverse. */
static int sum_percpu(const struct ti_kernel *k, int fd, uint32_t n, uint64_t *out)
{
	uint64_t vals[k->ncpus > 0 ? k->ncpus : 1];

	for (uint32_t i = n; i-- > 0;) {
		out[i] = 0;
		if (bpf_map_lookup_elem(fd, &i, vals))
			return -errno;
		for (int c = 0; c < k->ncpus; c++)
			out[i] += vals[c];
	}
	return 0;
}

/* The counters: each CPU's block of the .bss array ti_ctr (struct
 * ti_cpu_ctr), read through the mmap-ed .bss, downstream counters first
 * as in sum_percpu; CPUs numbered TI_CTR_CPUS and up count in the "stats"
 * map, read only on a machine that has them. */
static int live_stats(const struct ti_kernel *k, uint64_t out[TI_STAT_MAX])
{
	const volatile struct ti_cpu_ctr *ctr;
	int n, err;

	if (!k->skel || !k->skel->bss)
		return -EBADF;
	memset(out, 0, TI_STAT_MAX * sizeof(out[0]));
	if (k->ncpus > TI_CTR_CPUS && (err = sum_percpu(k, bpf_map__fd(k->skel->maps.stats), TI_STAT_MAX, out)))
		return err;
	ctr = k->skel->bss->ti_ctr;
	n = k->ncpus < TI_CTR_CPUS ? k->ncpus : TI_CTR_CPUS;
	for (uint32_t i = TI_STAT_MAX; i-- > 0;)
		for (int c = 0; c < n; c++)
			out[i] += ctr[c].stat[i];
	return 0;
}

static int live_drop_stats(const struct ti_kernel *k, uint64_t out[TI_DROP_CTR_SLOTS], char *why, size_t whylen)
{
	if (!k->skel)
		return -EBADF;
	if (!k->drop_link) {
		snprintf(why, whylen, "%s",
			 k->drop_status[0] ? k->drop_status : "drops are off: open the session with drops = true");
		return -EOPNOTSUPP;
	}
	/* downstream first, as live_stats: the reasons, then lost ... seen */
	return sum_percpu(k, bpf_map__fd(k->skel->maps.drop_ctr), TI_DROP_CTR_SLOTS, out);
}

static void live_describe(const struct ti_kernel *k, struct ti_kernel_info *info)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	memset(info, 0, sizeof(*info));
	info->mode = ti_mode_names[k->mode];
	info->netns_path = k->tc_netns_path;
	info->fd = k->rb ? k->epfd : -1;
	info->clock = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* session.probes: each hook's status.  In tc mode it follows the link
 * monitor (interfaces attached later, or let go). */
static void live_hooks(const struct ti_kernel *k, ti_hook_fn fn, void *ctx)
{
	char probe[96], status[600];

	switch (k->mode) {
	case TI_MODE_FENTRY:
	case TI_MODE_KPROBE:
		for (int i = 0; i < 2; i++)
			fn(ctx, &(struct ti_hook_info){ .probe = probe_fn(i),
							.status = k->probe_status[i][0] ? k->probe_status[i]
											: "not requested" });
		break;
	case TI_MODE_CGROUP:
		snprintf(status, sizeof(status), "attached to %s", k->cgroup_path);
		fn(ctx, &(struct ti_hook_info){ .probe = ti_probe_key(TI_PROBE_CGROUP), .status = status });
		break;
	case TI_MODE_TC:
		for (int i = 0; i < k->ntc; i++) {
			snprintf(probe, sizeof(probe), "%s:%s", ti_probe_key(TI_PROBE_TC), k->tc[i].label);
			fn(ctx, &(struct ti_hook_info){ .probe = probe,
							.status = k->tc[i].link_fd >= 0 ? "attached (tcx link)"
											: "attached (clsact filter)",
							.netns = k->tc[i].netns,
							.ifindex = (uint32_t)k->tc[i].ifindex,
							.dev = k->tc[i].name });
		}
		if (k->tc_netns_note[0]) {
			snprintf(status, sizeof(status), "skipped: %s", k->tc_netns_note);
			fn(ctx, &(struct ti_hook_info){ .probe = "tc/ingress:@*", .status = status });
		}
		for (int i = 0; i < k->ntc_skipped; i++) {
			snprintf(probe, sizeof(probe), "%s:%s", ti_probe_key(TI_PROBE_TC), k->tc_skipped[i].name);
			snprintf(status, sizeof(status), "skipped: %s", k->tc_skipped[i].why);
			fn(ctx, &(struct ti_hook_info){ .probe = probe, .status = status });
		}
		break;
	default: break;
	}
	if (k->drop_status[0])
		fn(ctx, &(struct ti_hook_info){ .probe = ti_probe_key(TI_PROBE_KFREE_SKB), .status = k->drop_status });
}

static int live_test_run(const struct ti_kernel *k, const void *frame, size_t len, int repeat, int *retval,
			 uint32_t *ns, char *why, size_t whylen)
{
	DECLARE_LIBBPF_OPTS(bpf_test_run_opts, t, .data_in = frame, .data_size_in = (__u32)len, .repeat = repeat);
	struct bpf_program *prog;

	if (!k->skel)
		return -EBADF;
	if (k->mode == TI_MODE_TC) {
		prog = tc_prog(k);
	} else if (k->mode == TI_MODE_CGROUP) {
		prog = cgroup_prog(k);
	} else {
		snprintf(why, whylen, "test_run needs a session in tc or cgroup mode, not %s", ti_mode_names[k->mode]);
		return -EOPNOTSUPP;
	}
	if (bpf_prog_test_run_opts(bpf_program__fd(prog), &t)) {
		int err = -errno;

		snprintf(why, whylen, "BPF_PROG_TEST_RUN failed: %s", strerror(-err));
		return err;
	}
	*retval = (int)t.retval;
	*ns = t.duration;
	return 0;
}

/* ---- close ------------------------------------------------------------------------- */

static void live_close(struct ti_kernel *k)
{
	if (k->epfd >= 0) {
		close(k->epfd);
		k->epfd = -1;
	}
	if (k->rb) {
		ring_buffer__free(k->rb);
		k->rb = NULL;
	}
	/* a forked child closing its copy of the session (os.exit(0, true)
	 * in a child, __gc) only closes its fds: detaching would take the
	 * parent's hooks away (a link's fds are shared; legacy perf-event and
	 * netlink attachments are not fds at all) */
	for (int i = 0; i < k->nlinks; i++) {
		if (k->owner != (int)getpid())
			bpf_link__disconnect(k->links[i]);
		bpf_link__destroy(k->links[i]);
	}
	k->nlinks = 0;
	if (k->drop_link) {
		if (k->owner != (int)getpid())
			bpf_link__disconnect(k->drop_link);
		bpf_link__destroy(k->drop_link);
		k->drop_link = NULL;
	}
	ti_tc_detach(k);
	if (k->skel) {
		tcpinspect_bpf__destroy(k->skel);
		k->skel = NULL;
	}
	/* the copies describe the destroyed tries' entries: they go with them */
	for (int i = 0; i < 2; i++) {
		free(k->slot_filter[i]);
		k->slot_filter[i] = NULL;
	}
	k->slot = 0;
}

/* the "conns" hash map (conns = true; kernel_conns.c) */
static int live_conn_next(const struct ti_kernel *k, const struct ti_conn_key *prev, struct ti_conn_key *next)
{
	if (!k->skel)
		return -EBADF;
	return bpf_map_get_next_key(bpf_map__fd(k->skel->maps.conns), prev, next) ? -errno : 0;
}

static int live_conn_lookup(const struct ti_kernel *k, const struct ti_conn_key *key, struct ti_conn *c)
{
	if (!k->skel)
		return -EBADF;
	return bpf_map_lookup_elem(bpf_map__fd(k->skel->maps.conns), key, c) ? -errno : 0;
}

/* BPF_MAP_LOOKUP_AND_DELETE_ELEM (hash maps: 5.14 on): the value the
 * entry had when it left the table, so that a segment counted between
 * the walk's lookup and the removal is in the connection's line */
static int live_conn_take(const struct ti_kernel *k, const struct ti_conn_key *key, struct ti_conn *c)
{
	if (!k->skel)
		return -EBADF;
	return bpf_map_lookup_and_delete_elem(bpf_map__fd(k->skel->maps.conns), key, c) ? -errno : 0;
}

static const struct ti_kernel_ops live_ops = {
	.conn_next = live_conn_next,
	.conn_lookup = live_conn_lookup,
	.conn_take = live_conn_take,
	.set_filter = live_set_filter,
	.wait = live_wait,
	.consume = live_consume,
	.stats = live_stats,
	.drop_stats = live_drop_stats,
	.describe = live_describe,
	.hooks = live_hooks,
	.test_run = live_test_run,
	.map_elems = ti_live_map_elems,
	.map_read = ti_live_map_read,
	.map_write = ti_live_map_write,
	.close = live_close,
};

/* ---- the interface: one call through the backend's operations ------------------------ */

int ti_kernel_open(struct ti_kernel **out, const struct ti_load_opts *o, const struct ti_filter *f, char *why,
		   size_t whylen)
{
	struct ti_kernel *k = malloc(sizeof(*k));
	int err;

	*out = NULL;
	if (!k) {
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	ti_kernel_init(k);
	if ((err = ti_kernel_open_live(k, o, f, why, whylen))) {
		free(k);
		return err;
	}
	if ((err = ti_conns_init(k, o))) {
		snprintf(why, whylen, "out of memory for max_conns = %u", o->max_conns);
		ti_kernel_close(k);
		return err;
	}
	*out = k;
	return 0;
}

void ti_kernel_release(struct ti_kernel *k)
{
	k->ops->close(k);
	ti_conns_free(k);
}

void ti_kernel_close(struct ti_kernel *k)
{
	if (!k)
		return;
	ti_kernel_release(k);
	free(k);
}

int ti_kernel_set_filter(struct ti_kernel *k, const struct ti_filter *f)
{
	return k->ops->set_filter(k, f);
}

int ti_kernel_wait(struct ti_kernel *k, int64_t timeout_ms)
{
	return k->ops->wait(k, timeout_ms);
}

int ti_kernel_consume(struct ti_kernel *k, int64_t timeout_ms, ti_record_fn fn, void *ctx, char *why, size_t whylen)
{
	return k->ops->consume(k, timeout_ms, fn, ctx, why, whylen);
}

int ti_kernel_stats(const struct ti_kernel *k, uint64_t out[TI_STAT_MAX])
{
	int err = k->ops->stats(k, out);

	if (!err)
		ti_conns_stats(k, out);
	return err;
}

int ti_kernel_drop_stats(const struct ti_kernel *k, uint64_t out[TI_DROP_CTR_SLOTS], char *why, size_t whylen)
{
	return k->ops->drop_stats(k, out, why, whylen);
}

void ti_kernel_describe(const struct ti_kernel *k, struct ti_kernel_info *info)
{
	k->ops->describe(k, info);
}

void ti_kernel_hooks(const struct ti_kernel *k, ti_hook_fn fn, void *ctx)
{
	k->ops->hooks(k, fn, ctx);
}

int ti_kernel_test_run(const struct ti_kernel *k, const void *frame, size_t len, int repeat, int *retval, uint32_t *ns,
		       char *why, size_t whylen)
{
	return k->ops->test_run(k, frame, len, repeat, retval, ns, why, whylen);
}

/* ---- features() -------------------------------------------------------------------- */

int ti_kernel_probe_mode(enum ti_mode mode, bool *tcx, char *why, size_t whylen)
{
	struct ti_kernel *k = malloc(sizeof(*k));
	struct ti_load_opts o;
	int err;

	if (!k) {
		snprintf(why, whylen, "%s: out of memory", ti_mode_names[mode]);
		return -ENOMEM;
	}
	ti_kernel_init(k);
	memset(&o, 0, sizeof(o));
	o.mode = mode;
	o.ring_size = 4096 * 4;
	o.max_flows = 16;
	o.wakeup = 1;
	if (mode == TI_MODE_TC) {
		o.ndevs = 1;
		strcpy(o.devs[0], "lo");
	}
	err = open_mode(k, &o, mode, NULL, why, whylen);
	if (!err && tcx)
		*tcx = k->ntc > 0 && k->tc[0].link_fd >= 0;
	live_close(k);
	free(k);
	return err;
}

/* Load and attach drop hook i alone, then undo.  0 or -errno with why. */
static int probe_drop_hook(int i, char *why, size_t whylen)
{
	struct tcpinspect_bpf *sk;
	struct bpf_link *l;
	struct bpf_program *prog;
	int err;

	ti_libbpf_log_clear();
	sk = tcpinspect_bpf__open();
	if (!sk) {
		err = -errno;
		snprintf(why, whylen, "opening the BPF object failed: %s", strerror(-err));
		return err;
	}
	bpf_object__for_each_program(prog, sk->obj) bpf_program__set_autoload(prog, false);
	bpf_program__set_autoload(drop_prog(sk, i), true);
	bpf_map__set_max_entries(sk->maps.flows, TI_TABLE_WAYS);
	bpf_map__set_max_entries(sk->maps.sources, TI_TABLE_WAYS);
	bpf_map__set_max_entries(sk->maps.drops, TI_TABLE_WAYS);
	bpf_map__set_max_entries(sk->maps.flows_sum, 1);
	bpf_map__set_max_entries(sk->maps.sources_sum, 1);
	bpf_map__set_max_entries(sk->maps.drops_sum, 1);
	bpf_map__set_max_entries(sk->maps.events, 4096 * 4);
	sk->rodata->ti_load.drops = 1;
	if ((err = tcpinspect_bpf__load(sk))) {
		snprintf(why, whylen, "the kernel refused the drop hook (%s/kfree_skb): %s", drop_hook_names[i],
			 strerror(-err));
		tcpinspect_bpf__destroy(sk);
		return err;
	}
	l = bpf_program__attach(drop_prog(sk, i));
	err = l ? 0 : -errno;
	if (!l)
		snprintf(why, whylen, "attaching %s/kfree_skb failed: %s", drop_hook_names[i], strerror(-err));
	bpf_link__destroy(l);
	tcpinspect_bpf__destroy(sk);
	return err;
}

int ti_kernel_probe_drops(char *why, size_t whylen)
{
	int first, last, err = -ENOENT;

	if (!ti_can_read_kernel()) {
		snprintf(why, whylen,
			 "the drop hook (skb:kfree_skb) needs CAP_PERFMON (or CAP_SYS_ADMIN); run as root");
		return -EPERM;
	}
	if (!ti_kernel_has_btf()) {
		snprintf(why, whylen, "the drop hook (skb:kfree_skb) needs the kernel's BTF (CONFIG_DEBUG_INFO_BTF=y)");
		return -ENOENT;
	}
	drop_hook_range(&first, &last);
	for (int i = first; i <= last && err; i++)
		err = probe_drop_hook(i, why, whylen);
	return err;
}
