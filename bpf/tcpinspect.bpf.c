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
#include "ti_cbpf.h"

#define ETH_HLEN 14
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define IPPROTO_TCP_ 6
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

struct ti_tcphdr {
	__be16 source;
	__be16 dest;
	__be32 seq;
	__be32 ack_seq;
	__u8 doff_res; /* data offset in the high nibble */
	__u8 flags;
	__be16 window;
	__sum16 check;
	__be16 urg_ptr;
};

/* Per-CPU scratch space: the segment, its headers, map keys and initial
 * values.  Built on the stack they trip Linux 6.1's verifier without
 * CAP_PERFMON ("attempt to corrupt spilled pointer on stack": clang reuses
 * the slots of spilled pointers for them); in a map value they are plain
 * memory.  Hooks run with migration disabled and do not nest on a CPU. */
struct ti_scratch {
	struct ti_event ev;   /* the segment being handled */
	__u8 pkt[2 * TI_PKT_MAX]; /* its first bytes from the IP header on (ti_copy_*),
				   * at most TI_PKT_MAX (the rest: see ti_bounded);
				   * right after ev, so that a record with its bytes
				   * is one copy into the ring (ti_emit_bytes) */
	__u64 buflen;         /* bytes in pkt */
	__u64 slot;           /* the filter slot the bytes were copied for */
	struct ti_cbpf_state cbpf; /* the filter expression's interpreter */
	__u8 ip[40];          /* its IP header bytes */
	struct ti_tcphdr th;  /* its TCP header */
	__u8 ext[8];          /* an IPv6 extension header's first bytes */
	__u32 nh, l4;         /* the IPv6 header walk: next header, its offset */
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

/* n if it is at most max (a power of two), else 0, in a way the verifier
 * of 6.1 follows: a comparison alone is not enough there (clang computes
 * it apart from n, and a helper's size argument then has no bound: "R4
 * min value is negative, either use unsigned or 'var &= const'"), so the
 * value is also masked, after a barrier that keeps clang from dropping the
 * mask as redundant.  The verifier then knows n <= 2 * max - 1: buffers
 * sized with it (ti_scratch.pkt) hold 2 * max bytes. */
#define ti_barrier_var(v) asm volatile("" : "+r"(v))

static __always_inline __u64 ti_bounded(__u64 n, __u64 max)
{
	if (n > max)
		n = 0;
	ti_barrier_var(n);
	return n & (2 * max - 1);
}

/* ---- parse: raw IP and TCP header bytes -> struct ti_event ---------------- */


/* Fill e from an IP header (ip points at 40 bytes, enough for either family)
 * and a TCP header.  l4_off is the TCP header's offset from the IP header.
 * Returns 0, or -1 for a segment too short to be real. */
static __always_inline int ti_parse(struct ti_event *e, const __u8 *ip, __u32 l4_off,
				    const struct ti_tcphdr *th)
{
	__u32 l4len, hdrlen = (th->doff_res >> 4) * 4;

	if ((ip[0] >> 4) == 4) {
		const struct iphdr *h = (const void *)ip;

		e->family = 4;
		__builtin_memcpy(e->saddr, &h->saddr, 4);
		__builtin_memcpy(e->daddr, &h->daddr, 4);
		e->ttl = h->ttl;
		e->iplen = bpf_ntohs(h->tot_len);
		l4len = e->iplen - l4_off;
	} else {
		const struct ipv6hdr *h = (const void *)ip;

		e->family = 6;
		__builtin_memcpy(e->saddr, &h->saddr, 16);
		__builtin_memcpy(e->daddr, &h->daddr, 16);
		e->ttl = h->hop_limit;
		e->iplen = bpf_ntohs(h->payload_len);
		l4len = e->iplen + 40 - l4_off;
	}
	if (hdrlen < 20 || l4len < hdrlen || l4len > 0xffff)
		return -1;
	e->len = l4len - hdrlen;
	e->sport = bpf_ntohs(th->source);
	e->dport = bpf_ntohs(th->dest);
	e->seq = bpf_ntohl(th->seq);
	e->ack = bpf_ntohl(th->ack_seq);
	e->window = bpf_ntohs(th->window);
	e->flags = th->flags;
	return 0;
}

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

/* snaplen > 0: the record is the event and its caplen bytes, which follow
 * it in the scratch: one bpf_ringbuf_output of a bounded, variable size. */
static __always_inline void ti_emit_bytes(const struct ti_event *e)
{
	__u64 flags = BPF_RB_NO_WAKEUP, cons, len;

	len = sizeof(*e) + ti_bounded(e->caplen, TI_SNAPLEN_MAX);
	/* the batched wakeups of ti_emit, counting this record as pending */
	if (bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) + len >= ti_load.wakeup_bytes) {
		cons = bpf_ringbuf_query(&events, BPF_RB_CONS_POS) + 1;
		if (cons != ti_woken_cons) {
			ti_woken_cons = cons;
			flags = BPF_RB_FORCE_WAKEUP;
		}
	}
	if (bpf_ringbuf_output(&events, (void *)e, len, flags)) {
		ti_count(TI_STAT_DROPPED);
		return;
	}
	ti_count(TI_STAT_DELIVERED);
}

static __always_inline void ti_emit(const struct ti_event *e)
{
	struct ti_event *r;
	__u64 flags = BPF_RB_NO_WAKEUP, cons;

	if (ti_sampled_out(e)) {
		ti_count(TI_STAT_SAMPLED_OUT);
		return;
	}
	if (ti_load.snaplen) {
		ti_emit_bytes(e);
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

/* ---- filter expressions: classic BPF from libpcap (bpf/ti_cbpf.h) ----------- */

/* One instruction per iteration of bpf_loop: the verifier checks this
 * callback once, whatever the program, and the program can change at run
 * time (it is in the filter slot, written by set_filter).  Jumps go
 * forward only, so len iterations are enough for any path to reach its
 * RET; the state lives in the scratch (no pointer passed in ctx). */
static long ti_cbpf_cb(__u32 i, void *ctx)
{
	__u64 zero = 0;
	struct ti_scratch *x = bpf_map_lookup_elem(&scratch, &zero);
	const struct ti_cbpf_prog *p;
	__u64 pc;

	if (!x)
		return 1;
	p = &ti_cfg[x->slot & 1].expr;
	pc = x->cbpf.pc;
	if (pc >= p->len) {
		x->cbpf.ret = 0;
		return 1;
	}
	return ti_cbpf_step(&x->cbpf, &p->insns[pc & (TI_CBPF_MAX_INSNS - 1)], x->pkt, x->buflen,
			    x->ev.wirelen);
}

/* The expression's verdict on the bytes in x->pkt: nonzero accepts. */
static __always_inline int ti_expr_match(struct ti_scratch *x, __u64 len)
{
	__builtin_memset(&x->cbpf, 0, sizeof(x->cbpf));
	if (len > TI_CBPF_MAX_INSNS)
		return 0;
	bpf_loop(len, ti_cbpf_cb, NULL, 0);
	return x->cbpf.ret != 0;
}

/* How many bytes of the segment a hook copies into x->pkt: what the
 * snaplen and the filter expression of the slot in force need, at most
 * the segment (wirelen: no Ethernet padding) and what the hook can read
 * (avail).  Also fills ev.wirelen and ev.caplen, and remembers the slot,
 * so that ti_handle filters with the configuration the copy was made for. */
static __always_inline __u64 ti_bytes_wanted(struct ti_scratch *x, __u64 avail)
{
	__u64 slot = ti_cfg_slot & 1, n = ti_load.snaplen, wirelen;

	x->slot = slot;
	wirelen = x->ev.family == 4 ? x->ev.iplen : x->ev.iplen + 40;
	x->ev.wirelen = wirelen;
	if (ti_cfg[slot].expr.len && n < TI_CBPF_WINDOW)
		n = TI_CBPF_WINDOW;
	if (n > wirelen)
		n = wirelen;
	if (n > avail)
		n = avail;
	if (n > TI_PKT_MAX)
		n = TI_PKT_MAX;
	return n;
}

/* A helper's size argument of 1 .. 2 * TI_PKT_MAX, n itself when n is
 * 1 .. TI_PKT_MAX.  Needed inside `if (n)`: where the verifier knows n
 * (0, say), it still walks the other side of the branch for Spectre v1
 * without CAP_PERFMON (6.1), with n marked unknown. */
static __always_inline __u64 ti_size_arg(__u64 n)
{
	ti_barrier_var(n);
	return ((n - 1) & (2 * TI_PKT_MAX - 1)) + 1;
}

static __always_inline void ti_bytes_copied(struct ti_scratch *x, __u64 n)
{
	x->buflen = n;
	x->ev.caplen = n < ti_load.snaplen ? n : ti_load.snaplen;
}

/* fentry/kprobe: from the skb's linear data (src: its IP header). */
static __always_inline void ti_copy_kernel(struct ti_scratch *x, const void *src, __u64 avail)
{
	__u64 n = ti_bounded(ti_bytes_wanted(x, avail), TI_PKT_MAX);

	if (n && bpf_probe_read_kernel(x->pkt, ti_size_arg(n), src))
		n = 0;
	ti_bytes_copied(x, n);
}

/* tc/cgroup: bpf_skb_load_bytes from off (the IP header). */
static __always_inline void ti_copy_sk_buff(struct ti_scratch *x, struct __sk_buff *skb, __u64 off)
{
	__u64 n = ti_bounded(ti_bytes_wanted(x, skb->len > off ? skb->len - off : 0), TI_PKT_MAX);

	if (n && bpf_skb_load_bytes(skb, off, x->pkt, ti_size_arg(n)))
		n = 0;
	ti_bytes_copied(x, n);
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
	__u32 slot;
	__u64 zero = 0;
	const struct ti_config *c;
	struct ti_scratch *x = bpf_map_lookup_elem(&scratch, &zero);
	const struct ti_event *e;

	if (!x)
		return 0;
	slot = x->slot & 1; /* the slot the hook copied the bytes for */
	c = &ti_cfg[slot];
	e = &x->ev;
	ti_count(TI_STAT_SEEN);
	if (!ti_filter(c, slot, e, x) || (c->expr.len && !ti_expr_match(x, c->expr.len))) {
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
		__builtin_memset(&x->ev, 0, sizeof(x->ev));
		__builtin_memset(x->ip, 0, sizeof(x->ip) + sizeof(x->th));
		x->ev.probe = probe;
		x->ev.ts = bpf_ktime_get_ns();
		x->ev.cpu = bpf_get_smp_processor_id();
	}
	return x;
}

/* ---- entries: function probes on tcp_v4_rcv / tcp_v6_rcv -------------------- */

/* At entry to tcp_v{4,6}_rcv the network and transport header offsets are
 * set and both headers are in the linear area. */
static __always_inline int ti_from_kernel_skb(struct sk_buff *skb, __u8 probe)
{
	struct ti_scratch *x = ti_scratch_get(probe);
	unsigned char *head = BPF_CORE_READ(skb, head);
	__u16 nh = BPF_CORE_READ(skb, network_header);
	__u16 tp = BPF_CORE_READ(skb, transport_header);

	if (!x)
		return 0;
	x->ev.ifindex = BPF_CORE_READ(skb, dev, ifindex);
	x->ev.netns = BPF_CORE_READ(skb, dev, nd_net.net, ns.inum);
	if (bpf_probe_read_kernel(x->ip, sizeof(x->ip), head + nh) ||
	    bpf_probe_read_kernel(&x->th, sizeof(x->th), head + tp) ||
	    ti_parse(&x->ev, x->ip, (__u16)(tp - nh), &x->th)) {
		ti_count(TI_STAT_ERRORS);
		return 0;
	}
	ti_copy_kernel(x, head + nh, (__u32)(BPF_CORE_READ(skb, tail) - nh));
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

#define IPPROTO_HOPOPTS_ 0
#define IPPROTO_ROUTING_ 43
#define IPPROTO_FRAGMENT_ 44
#define IPPROTO_AH_ 51
#define IPPROTO_DSTOPTS_ 60
#define TI_V6_EXT_MAX 6 /* extension headers walked before TCP */

/* The headers of a frame the kernel has not validated yet (tc runs before
 * ip_rcv; cgroup_skb after it, where the same checks all pass).  off: where
 * the IP header starts.  Returns 1 for one whole TCP segment, parsed into
 * x->ev; 0 for a frame that is not TCP (counted nowhere: not ours); -1 for
 * a frame that carries TCP but is not one whole readable segment, counted
 * in `errors` (doc/modes.md, "Odd frames"):
 *   an IPv4 fragment, first or not (MF set or a fragment offset): tc sees
 *   fragments, never the reassembled segment; an IPv6 Fragment header
 *   before TCP; an IPv4 header with IHL < 5 or version != 4; a total length
 *   (IPv6: 40 + payload length) larger than the frame or too small for the
 *   IP and TCP headers; a TCP data offset < 5 or past the total length;
 *   more than TI_V6_EXT_MAX IPv6 extension headers.
 * A total length smaller than the frame is Ethernet padding: the segment
 * ends at the total length.  IPv6 hop-by-hop, routing, destination-options
 * and AH headers are walked; the segment after them counts as usual. */
static __always_inline __s64 ti_sk_buff_segment(struct __sk_buff *skb, __u64 off,
						struct ti_scratch *x)
{
	/* 64-bit locals and no byte buffer on the stack: see ti_count */
	__u64 l4_off, iplen, avail;

	if (skb->len <= off)
		return 0;
	avail = skb->len - off; /* IP bytes in the frame */
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		if (bpf_skb_load_bytes(skb, off, x->ip, 20) || x->ip[9] != IPPROTO_TCP_)
			return 0;
		l4_off = (x->ip[0] & 0xf) * 4;
		if ((x->ip[0] >> 4) != 4 || l4_off < 20)
			return -1;
		if ((x->ip[6] & 0x3f) || x->ip[7]) /* MF, or a fragment offset */
			return -1;
		iplen = ((__u32)x->ip[2] << 8) | x->ip[3];
	} else {
		if (bpf_skb_load_bytes(skb, off, x->ip, 40))
			return 0;
		x->nh = x->ip[6];
		if ((x->ip[0] >> 4) != 6)
			return x->nh == IPPROTO_TCP_ ? -1 : 0;
		x->l4 = 40;
		/* The extension headers, TI_V6_EXT_MAX of them at most, written out:
		 * clang does not unroll this walk (it has exits), and a loop
		 * counter or walk state on the stack trips 6.1 without
		 * CAP_PERFMON (see ti_count); the state lives in the scratch. */
#define TI_V6_EXT_STEP()                                                                  \
	if (x->nh != IPPROTO_TCP_) {                                                      \
		if (x->nh != IPPROTO_HOPOPTS_ && x->nh != IPPROTO_ROUTING_ &&               \
		    x->nh != IPPROTO_DSTOPTS_ && x->nh != IPPROTO_AH_ &&                    \
		    x->nh != IPPROTO_FRAGMENT_)                                             \
			return 0; /* UDP, ICMPv6, no next header, ...: not TCP */            \
		if (bpf_skb_load_bytes(skb, off + x->l4, x->ext, 2))                        \
			return -1;                                                          \
		if (x->nh == IPPROTO_FRAGMENT_) /* a fragment: of TCP? */                  \
			return x->ext[0] == IPPROTO_TCP_ ? -1 : 0;                          \
		x->l4 += x->nh == IPPROTO_AH_ ? ((__u32)x->ext[1] + 2) * 4 : ((__u32)x->ext[1] + 1) * 8; \
		x->nh = x->ext[0];                                                          \
	}
		TI_V6_EXT_STEP() TI_V6_EXT_STEP() TI_V6_EXT_STEP()
		TI_V6_EXT_STEP() TI_V6_EXT_STEP() TI_V6_EXT_STEP()
#undef TI_V6_EXT_STEP
		if (x->nh != IPPROTO_TCP_)
			return -1; /* too many extension headers to tell */
		l4_off = x->l4;
		iplen = 40 + (((__u32)x->ip[4] << 8) | x->ip[5]);
	}
	if (iplen > avail || l4_off + sizeof(x->th) > iplen)
		return -1;
	if (bpf_skb_load_bytes(skb, off + l4_off, &x->th, sizeof(x->th)))
		return -1;
	return ti_parse(&x->ev, x->ip, l4_off, &x->th) ? -1 : 1;
}

static __always_inline void ti_from_sk_buff(struct __sk_buff *skb, __u64 off, __u8 probe)
{
	struct ti_scratch *x;
	__s64 r; /* 64-bit: see ti_count */

	if (skb->protocol != bpf_htons(ETH_P_IP) && skb->protocol != bpf_htons(ETH_P_IPV6))
		return;
	x = ti_scratch_get(probe);
	if (!x)
		return;
	x->ev.ifindex = skb->ifindex;
	x->ev.netns = ti_load.netns;
	r = ti_sk_buff_segment(skb, off, x);
	if (r < 0)
		ti_count(TI_STAT_ERRORS);
	else if (r > 0) {
		ti_copy_sk_buff(x, skb, off);
		ti_handle();
	}
}

SEC("cgroup_skb/ingress")
int ti_cgroup_ingress(struct __sk_buff *skb)
{
	ti_from_sk_buff(skb, 0, TI_PROBE_CGROUP);
	return 1; /* allow: tcpinspect observes, it never drops */
}

SEC("tc")
int ti_tc_ingress(struct __sk_buff *skb)
{
	/* Only frames addressed to this host, as tcp_v4_rcv would see them,
	 * and only where the IP stack receives them: a frame whose VLAN tag
	 * the device took off (vlan_present) goes on to the VLAN device, and
	 * is counted there (doc/modes.md, "Stacked devices"). */
	if (skb->pkt_type == PACKET_HOST_ && !skb->vlan_present)
		ti_from_sk_buff(skb, ETH_HLEN, TI_PROBE_TC);
	return -1; /* TC_ACT_UNSPEC: continue as if we were not here */
}
