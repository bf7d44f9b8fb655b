// SPDX-License-Identifier: GPL-2.0
/* tcpinspect.bpf.c: every hook tcpinspect can use, all feeding one path:
 *
 *   hook entry  ->  ti_parse()  ->  ti_filter()  ->  ti_aggregate()  ->  ti_emit()
 *
 * Only the entry differs per hook: the function probes (fentry, kprobe) read
 * the headers out of the sk_buff that tcp_v4_rcv/tcp_v6_rcv receive; the
 * cgroup_skb and tc programs load them from the __sk_buff (the tc one after
 * the Ethernet header).  User space picks the programs to load with
 * bpf_program__set_autoload() before loading.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "tcpinspect.h"
#include "ti_table.h"

/* The frame walk loads from the __sk_buff (bpf/ti_parse.h). */
#define TI_PARSE_CTX struct __sk_buff *
#define TI_PARSE_LOAD(skb, off, dst, n) bpf_skb_load_bytes(skb, off, dst, n)
#include "ti_parse.h"

#define ETH_HLEN 14
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define PACKET_HOST_ 0

char LICENSE[] SEC("license") = "GPL";

/* Load-time options (sample, events, aggregates, wakeup, netns, family):
 * set by user space before load (luaext/kernel.c), constants to the verifier. */
const volatile struct ti_load_config ti_load = {};

/* The filter's two slots and the selector; written by user space through the
 * mmap-ed .bss (ti_kernel_set_filter in luaext/kernel.c). */
struct ti_config ti_cfg[2];
volatile __u32 ti_cfg_slot;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22); /* resized by user space: ring_size */
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TI_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

/* Per-CPU running count for 1-in-N sampling. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} sample_ctr SEC(".maps");

/* The aggregates: per-CPU arrays, so a segment costs the same whether its
 * flow, port or source is new or known (no insert, no eviction search, no
 * atomics).  flows and sources are set-associative tables (ti_table.h),
 * ports is indexed by the port itself. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 16384); /* entries, resized by user space from max_flows */
	__type(key, __u32);
	__type(value, struct ti_flow_entry);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct ti_port_val);
} ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 16384); /* entries, resized with flows */
	__type(key, __u32);
	__type(value, struct ti_source_entry);
} sources SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TI_HIST_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} len_hist SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1024);
	__type(key, struct ti_lpm_key);
	__type(value, __u8);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} saddr_lpm SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1024);
	__type(key, struct ti_lpm_key);
	__type(value, __u8);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} daddr_lpm SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1024);
	__type(key, struct ti_lpm_key);
	__type(value, __u8);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} host_lpm SEC(".maps");

/* Per-CPU scratch space: the segment, its headers, map keys and initial
 * values.  Built on the stack they trip Linux 6.1's verifier without
 * CAP_PERFMON ("attempt to corrupt spilled pointer on stack": clang reuses
 * the slots of spilled pointers for them); in a map value they are plain
 * memory.  Hooks run with migration disabled and do not nest on a CPU. */
struct ti_scratch {
	struct ti_event ev;   /* the segment being handled */
	struct ti_walk w;     /* its headers (bpf/ti_parse.h) */
	__u32 entry;          /* the table entry being looked up (ti_count_*) */
	__u32 pad1;
	/* keys, zeroed per segment by ti_aggregate */
	struct ti_flow_key fk;
	struct ti_addr_key ak;
	struct ti_lpm_key lk;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ti_scratch);
} scratch SEC(".maps");

/* Map keys on the stack are 64-bit, though the maps read only 4 bytes of
 * them (little-endian BPF): a 4-byte store into a stack slot that held a
 * spilled pointer is refused by 6.1 without CAP_PERFMON ("attempt to
 * corrupt spilled pointer on stack"), and clang reuses stack slots. */
static __always_inline void ti_count(__u32 stat)
{
	__u64 key = stat;
	__u64 *v = bpf_map_lookup_elem(&stats, &key);

	if (v)
		*v += 1;
}

/* ---- parse: bpf/ti_parse.h (ti_parse, ti_frame_segment) ---------------- */

/* ---- filter --------------------------------------------------------------- */

static __always_inline int ti_port_in(const __u8 *bits, __u16 port)
{
	return bits[port >> 3] & (1 << (port & 7));
}

static __always_inline int ti_addr_in(void *trie, __u32 slot, const struct ti_event *e,
				      const __u8 *addr, struct ti_scratch *x)
{
	x->lk.prefixlen = 16 + (e->family == 4 ? 32 : 128);
	x->lk.slot = slot;
	x->lk.family = e->family;
	__builtin_memcpy(x->lk.addr, addr, 16);
	return bpf_map_lookup_elem(trie, &x->lk) != NULL;
}

static __always_inline int ti_filter(const struct ti_config *c, __u32 slot,
				     const struct ti_event *e, struct ti_scratch *x)
{
	__u32 m = c->match;

	if (ti_load.family && e->family != ti_load.family)
		return 0;
	if (!m)
		return 1;
	if ((m & TI_M_FAMILY) && e->family != c->family)
		return 0;
	if ((m & TI_M_SPORT) && !ti_port_in(c->sport_bits, e->sport))
		return 0;
	if ((m & TI_M_DPORT) && !ti_port_in(c->dport_bits, e->dport))
		return 0;
	if ((m & TI_M_PORT) && !ti_port_in(c->port_bits, e->sport) &&
	    !ti_port_in(c->port_bits, e->dport))
		return 0;
	if ((m & TI_M_FLAGS) && !(e->flags & c->flags_any))
		return 0;
	if ((m & TI_M_LEN) && (e->len < c->len_min || e->len > c->len_max))
		return 0;
	if ((m & TI_M_IFINDEX) && e->ifindex != c->ifindex)
		return 0;
	if ((m & TI_M_SADDR) && !ti_addr_in(&saddr_lpm, slot, e, e->saddr, x))
		return 0;
	if ((m & TI_M_DADDR) && !ti_addr_in(&daddr_lpm, slot, e, e->daddr, x))
		return 0;
	if ((m & TI_M_HOST) && !ti_addr_in(&host_lpm, slot, e, e->saddr, x) &&
	    !ti_addr_in(&host_lpm, slot, e, e->daddr, x))
		return 0;
	return 1;
}

/* ---- aggregate ------------------------------------------------------------ */

/* 0 for 0, else 1 + floor(log2(v)): 1 for 1, 2 for 2-3, 3 for 4-7, ...
 * Straight-line code: a loop here multiplies the verifier's states. */
static __always_inline __u32 ti_log2_slot(__u32 v)
{
	__u32 r = 0;

	if (v >= 1 << 8) {
		v >>= 8;
		r += 8;
	}
	if (v >= 1 << 4) {
		v >>= 4;
		r += 4;
	}
	if (v >= 1 << 2) {
		v >>= 2;
		r += 2;
	}
	if (v >= 1 << 1) {
		v >>= 1;
		r += 1;
	}
	return v ? r + 1 : 0;
}

/* Add e to its flow's entry in this CPU's flows table: the matching entry
 * of its bucket, else a free one, else the one with the fewest packets
 * (evicted, and counted).  Keeping the heavy entries means a flood of
 * one-segment flows churns among itself while the flows that matter stay.
 *
 * Every entry is a map element of its own, looked up by index, and only
 * indexes are carried from one step to the next, never pointers into a
 * bucket: without CAP_PERFMON the verifiers of 6.1 and later refuse the
 * pointer arithmetic clang makes of an entry chosen among four ("pointer
 * arithmetic with it prohibited for !root", "invalid mem access
 * 'scalar'").  Array lookups are inlined by the verifier: a few
 * instructions each.  The indexes are 64-bit: 6.1 without CAP_PERFMON
 * refuses a 4-byte store into a stack slot that held a spilled pointer
 * ("attempt to corrupt spilled pointer on stack"), and clang reuses slots. */
static __always_inline void ti_count_flow(const struct ti_event *e, const struct ti_flow_key *k,
					  struct ti_scratch *x)
{
	__u32 base = (ti_flow_hash(k) & ti_load.table_mask) * TI_TABLE_WAYS;
	struct ti_flow_entry *en;
	__u64 fewest = ~0ULL;
	__s64 slot = -1, victim = 0; /* 64-bit: a spill of them overwrites whole stack slots */

#pragma unroll
	for (int w = 0; w < TI_TABLE_WAYS; w++) {
		x->entry = base + w;
		en = bpf_map_lookup_elem(&flows, &x->entry);
		if (!en)
			return;
		if (!en->val.packets) {
			if (slot < 0)
				slot = w;
			continue;
		}
		if (ti_flow_key_eq(&en->key, k)) {
			en->val.packets++;
			en->val.bytes += e->len;
			en->val.last_ts = e->ts;
			en->val.flags_seen |= e->flags;
			return;
		}
		if (en->val.packets < fewest) {
			fewest = en->val.packets;
			victim = w;
		}
	}
	if (slot < 0) {
		ti_count(TI_STAT_EVICTED_FLOWS);
		slot = victim;
	}
	x->entry = base + (slot & (TI_TABLE_WAYS - 1));
	en = bpf_map_lookup_elem(&flows, &x->entry);
	if (!en)
		return;
	en->key = *k;
	en->val.packets = 1;
	en->val.bytes = e->len;
	en->val.first_ts = en->val.last_ts = e->ts;
	en->val.flags_seen = e->flags;
}

/* The same for the segment's source address in the sources table. */
static __always_inline void ti_count_source(const struct ti_event *e, const struct ti_addr_key *k,
					    struct ti_scratch *x)
{
	__u32 base = (ti_addr_hash(k) & ti_load.table_mask) * TI_TABLE_WAYS;
	__u64 syn = (e->flags & (TI_SYN | TI_ACK)) == TI_SYN, fewest = ~0ULL;
	struct ti_source_entry *en;
	__s64 slot = -1, victim = 0; /* 64-bit: a spill of them overwrites whole stack slots */

#pragma unroll
	for (int w = 0; w < TI_TABLE_WAYS; w++) {
		x->entry = base + w;
		en = bpf_map_lookup_elem(&sources, &x->entry);
		if (!en)
			return;
		if (!en->val.packets) {
			if (slot < 0)
				slot = w;
			continue;
		}
		if (ti_addr_key_eq(&en->key, k)) {
			en->val.packets++;
			en->val.bytes += e->len;
			en->val.syns += syn;
			return;
		}
		if (en->val.packets < fewest) {
			fewest = en->val.packets;
			victim = w;
		}
	}
	if (slot < 0) {
		ti_count(TI_STAT_EVICTED_SOURCES);
		slot = victim;
	}
	x->entry = base + (slot & (TI_TABLE_WAYS - 1));
	en = bpf_map_lookup_elem(&sources, &x->entry);
	if (!en)
		return;
	en->key = *k;
	en->val.packets = 1;
	en->val.bytes = e->len;
	en->val.syns = syn;
}

static __always_inline void ti_aggregate(const struct ti_event *e, struct ti_scratch *x)
{
	struct ti_port_val *pv;
	__u64 slot, port = e->dport; /* 64-bit keys: see ti_count */
	__u64 *h;

	__builtin_memset(&x->fk, 0, sizeof(x->fk) + sizeof(x->ak));
	x->fk.family = e->family;
	x->fk.sport = e->sport;
	x->fk.dport = e->dport;
	__builtin_memcpy(x->fk.saddr, e->saddr, 16);
	__builtin_memcpy(x->fk.daddr, e->daddr, 16);
	ti_count_flow(e, &x->fk, x);

	pv = bpf_map_lookup_elem(&ports, &port);
	if (pv) {
		pv->packets++;
		pv->bytes += e->len;
	}

	x->ak.family = e->family;
	__builtin_memcpy(x->ak.addr, e->saddr, 16);
	ti_count_source(e, &x->ak, x);

	slot = ti_log2_slot(e->len);
	h = bpf_map_lookup_elem(&len_hist, &slot);
	if (h)
		*h += 1;
}

/* ---- emit ----------------------------------------------------------------- */

static __always_inline int ti_sampled_out(const struct ti_event *e)
{
	__u64 zero = 0;
	__u64 *n;

	if (ti_load.sample <= 1 || (e->flags & (TI_SYN | TI_FIN | TI_RST)))
		return 0;
	n = bpf_map_lookup_elem(&sample_ctr, &zero);
	if (!n)
		return 0;
	return (*n)++ % ti_load.sample != 0;
}

/* 1 + the consumer position of the ring when a wakeup was last forced (0:
 * never), shared by all CPUs; see ti_emit. */
__u64 ti_woken_cons;

static __always_inline void ti_emit(const struct ti_event *e)
{
	struct ti_event *r;
	__u64 flags = BPF_RB_NO_WAKEUP, cons;

	if (ti_sampled_out(e)) {
		ti_count(TI_STAT_SAMPLED_OUT);
		return;
	}
	r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r) {
		ti_count(TI_STAT_DROPPED);
		return;
	}
	__builtin_memcpy(r, e, sizeof(*r));
	/* Batched wakeups: once `wakeup` records are pending, wake the reader
	 * once per position of its consumer: the first record at or past the
	 * mark forces a wakeup, and the next forced one waits until the reader
	 * has consumed something.  Nothing can be jumped over (a window on the
	 * pending bytes was: two CPUs reserving together skipped it, and a
	 * reader in poll(-1) slept while the ring filled), and a reader that is
	 * behind is not woken again and again (waking on every record above the
	 * mark cost ~5 us per record in `make bench`).  A wakeup marks the
	 * ring's epoll item ready, level-triggered, until the ring is empty, so
	 * one per consumer position is enough.  Two CPUs may both force one:
	 * harmless. */
	if (bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= ti_load.wakeup_bytes) {
		cons = bpf_ringbuf_query(&events, BPF_RB_CONS_POS) + 1;
		if (cons != ti_woken_cons) {
			ti_woken_cons = cons;
			flags = BPF_RB_FORCE_WAKEUP;
		}
	}
	bpf_ringbuf_submit(r, flags);
	ti_count(TI_STAT_DELIVERED);
}

/* ---- the one path every hook takes ---------------------------------------- */

/* A global (non-inlined) function: the verifier checks it once, on its
 * own, instead of once per hook and per path into it.  This keeps the
 * programs verifiable without CAP_PERFMON, where speculative-execution
 * checks multiply the states explored.  The hook has parsed the segment
 * into this CPU's scratch (ev); it is looked up again here rather than
 * passed, so that the verifier knows it as a map value (a key for maps). */
__attribute__((noinline)) int ti_handle(void)
{
	__u32 slot = ti_cfg_slot & 1;
	__u64 zero = 0;
	const struct ti_config *c = &ti_cfg[slot];
	struct ti_scratch *x = bpf_map_lookup_elem(&scratch, &zero);
	const struct ti_event *e;

	if (!x)
		return 0;
	e = &x->ev;
	ti_count(TI_STAT_SEEN);
	if (!ti_filter(c, slot, e, x)) {
		ti_count(TI_STAT_FILTERED);
		return 0;
	}
	ti_count(TI_STAT_MATCHED);
	if (ti_load.aggregates)
		ti_aggregate(e, x);
	if (ti_load.events)
		ti_emit(e);
	return 0;
}

static __always_inline struct ti_scratch *ti_scratch_get(__u8 probe)
{
	__u64 zero = 0;
	struct ti_scratch *x = bpf_map_lookup_elem(&scratch, &zero);

	if (x) {
		__builtin_memset(&x->ev, 0, sizeof(x->ev) + sizeof(x->w.ip) + sizeof(x->w.th));
		x->ev.probe = probe;
		x->ev.ts = bpf_ktime_get_ns();
		x->ev.cpu = bpf_get_smp_processor_id();
	}
	return x;
}

/* ---- entries: function probes on tcp_v4_rcv / tcp_v6_rcv -------------------- */

/* At entry to tcp_v{4,6}_rcv the network and transport header offsets are
 * set and both headers are in the linear area. */
#define TCP_TIME_WAIT_ 6
#define TCP_NEW_SYN_RECV_ 12

/* The cgroup v2 id of the socket early demux found for skb (0: none, or a
 * time-wait socket, which has no cgroup; a request socket stands for its
 * listener).  *in_scope: the socket is in ti_load.cgroup_id or below it. */
static __always_inline __u64 ti_sock_cgroup(struct sk_buff *skb, __u64 *in_scope)
{
	struct sock *sk = BPF_CORE_READ(skb, sk);
	struct cgroup *cg, *anc = NULL;
	__u64 state, level;

	*in_scope = 0;
	if (!sk)
		return 0;
	state = BPF_CORE_READ(sk, __sk_common.skc_state);
	if (state == TCP_TIME_WAIT_)
		return 0;
	if (state == TCP_NEW_SYN_RECV_)
		sk = BPF_CORE_READ(sk, __sk_common.skc_listener);
	cg = BPF_CORE_READ(sk, sk_cgrp_data.cgroup);
	if (!cg)
		return 0;
	if (ti_load.cgroup_id) {
		level = BPF_CORE_READ(cg, level);
		if (level >= ti_load.cgroup_level &&
		    !bpf_probe_read_kernel(&anc, sizeof(anc), (void *)cg + bpf_core_field_offset(struct cgroup, ancestors) +
								  ti_load.cgroup_level * sizeof(anc)))
			*in_scope = BPF_CORE_READ(anc, kn, id) == ti_load.cgroup_id;
	}
	return BPF_CORE_READ(cg, kn, id);
}

static __always_inline int ti_from_kernel_skb(struct sk_buff *skb, __u8 probe)
{
	struct ti_scratch *x;
	unsigned char *head = BPF_CORE_READ(skb, head);
	__u16 nh = BPF_CORE_READ(skb, network_header);
	__u16 tp = BPF_CORE_READ(skb, transport_header);
	__u64 netns = BPF_CORE_READ(skb, dev, nd_net.net, ns.inum), cgroup, in_scope;

	/* out of the session's scope: not seen at all, for one compare */
	if (ti_load.scope_netns && netns != ti_load.scope_netns)
		return 0;
	cgroup = ti_sock_cgroup(skb, &in_scope);
	if (ti_load.cgroup_id && !in_scope)
		return 0;
	x = ti_scratch_get(probe);
	if (!x)
		return 0;
	x->ev.ifindex = BPF_CORE_READ(skb, dev, ifindex);
	x->ev.netns = netns;
	x->ev.cgroup = cgroup;
	if (bpf_probe_read_kernel(x->w.ip, sizeof(x->w.ip), head + nh) ||
	    bpf_probe_read_kernel(&x->w.th, sizeof(x->w.th), head + tp) ||
	    ti_parse(&x->ev, x->w.ip, (__u16)(tp - nh), &x->w.th)) {
		ti_count(TI_STAT_ERRORS);
		return 0;
	}
	ti_handle();
	return 0;
}

SEC("fentry/tcp_v4_rcv")
int BPF_PROG(ti_fentry_v4, struct sk_buff *skb)
{
	return ti_from_kernel_skb(skb, TI_PROBE_TCP_V4_RCV);
}

SEC("fentry/tcp_v6_rcv")
int BPF_PROG(ti_fentry_v6, struct sk_buff *skb)
{
	return ti_from_kernel_skb(skb, TI_PROBE_TCP_V6_RCV);
}

SEC("kprobe/tcp_v4_rcv")
int BPF_KPROBE(ti_kprobe_v4, struct sk_buff *skb)
{
	return ti_from_kernel_skb(skb, TI_PROBE_TCP_V4_RCV);
}

SEC("kprobe/tcp_v6_rcv")
int BPF_KPROBE(ti_kprobe_v6, struct sk_buff *skb)
{
	return ti_from_kernel_skb(skb, TI_PROBE_TCP_V6_RCV);
}

/* ---- entries: __sk_buff hooks (cgroup_skb, tc) ------------------------------ */

/* The frame walk and what it counts as an error: ti_frame_segment in
 * bpf/ti_parse.h (the pcap replay walks captured frames with it too). */

static __always_inline void ti_from_sk_buff(struct __sk_buff *skb, __u64 off, __u8 probe,
					    __u64 netns, __u64 cgroup)
{
	struct ti_scratch *x;
	__s64 r; /* 64-bit: see ti_count */

	if (skb->protocol != bpf_htons(ETH_P_IP) && skb->protocol != bpf_htons(ETH_P_IPV6))
		return;
	x = ti_scratch_get(probe);
	if (!x)
		return;
	x->ev.ifindex = skb->ifindex;
	x->ev.netns = netns;
	x->ev.cgroup = cgroup;
	r = ti_frame_segment(skb, off, skb->len, skb->protocol == bpf_htons(ETH_P_IP), &x->ev,
			     &x->w);
	if (r < 0)
		ti_count(TI_STAT_ERRORS);
	else if (r > 0)
		ti_handle();
}

/* The netns of the socket a cgroup_skb program runs for.  Reading it takes
 * a BTF pointer (bpf_skc_to_tcp_sock), which the verifier allows only with
 * CAP_PERFMON, and a branch on a load-time constant does not hide it:
 * without CAP_PERFMON the verifier also walks the branch not taken (its
 * speculative-execution check).  So it is a program of its own,
 * ti_cgroup_ingress_ns, which user space loads instead of
 * ti_cgroup_ingress only when it has CAP_PERFMON. */
static __always_inline __u64 ti_skb_sock_netns(struct __sk_buff *skb)
{
	struct bpf_sock *sk = skb->sk;
	struct tcp_sock *tp;

	if (!sk)
		return 0;
	tp = bpf_skc_to_tcp_sock(sk);
	if (!tp)
		return 0;
	return tp->inet_conn.icsk_inet.sk.__sk_common.skc_net.net->ns.inum;
}

/* cgroup_skb: the socket's cgroup (skb->sk is the receiving socket) */
SEC("cgroup_skb/ingress")
int ti_cgroup_ingress(struct __sk_buff *skb)
{
	ti_from_sk_buff(skb, 0, TI_PROBE_CGROUP, 0, bpf_skb_cgroup_id(skb));
	return 1; /* allow: tcpinspect observes, it never drops */
}

/* ... and its netns (CAP_PERFMON), out of the scope's: not seen */
SEC("cgroup_skb/ingress")
int ti_cgroup_ingress_ns(struct __sk_buff *skb)
{
	__u64 netns = ti_skb_sock_netns(skb); /* 64-bit: see ti_count */

	if (ti_load.scope_netns && netns != ti_load.scope_netns)
		return 1;
	ti_from_sk_buff(skb, 0, TI_PROBE_CGROUP, netns, bpf_skb_cgroup_id(skb));
	return 1;
}

SEC("tc")
int ti_tc_ingress(struct __sk_buff *skb)
{
	/* Only frames addressed to this host, as tcp_v4_rcv would see them,
	 * and only where the IP stack receives them: a frame whose VLAN tag
	 * the device took off (vlan_present) goes on to the VLAN device, and
	 * is counted there (doc/modes.md, "Stacked devices"). */
	if (skb->pkt_type == PACKET_HOST_ && !skb->vlan_present)
		ti_from_sk_buff(skb, ETH_HLEN, TI_PROBE_TC, ti_load.netns, 0);
	return -1; /* TC_ACT_UNSPEC: continue as if we were not here */
}
