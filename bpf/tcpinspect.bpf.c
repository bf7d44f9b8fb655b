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

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384); /* resized by user space: max_flows */
	__type(key, struct ti_flow_key);
	__type(value, struct ti_flow_val);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u16);
	__type(value, struct ti_port_val);
} ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384); /* resized with max_flows */
	__type(key, struct ti_addr_key);
	__type(value, struct ti_source_val);
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
	__u8 ip[40];          /* its IP header bytes */
	struct ti_tcphdr th;  /* its TCP header */
	__u32 ring_count;     /* records this CPU put in the ring (ti_emit) */
	__u32 pad0;
	/* keys and initial values, zeroed per segment by ti_aggregate */
	struct ti_flow_key fk;
	struct ti_addr_key ak;
	struct ti_lpm_key lk;
	struct ti_flow_val finit;
	struct ti_port_val pinit;
	struct ti_source_val sinit;
	__u16 dport;
	__u16 pad[3];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ti_scratch);
} scratch SEC(".maps");

static __always_inline void ti_count(__u32 stat)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &stat);

	if (v)
		*v += 1;
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

/* The value under key to add this segment to, or NULL when the key was new
 * and init (already holding this segment's contribution) was inserted:
 * a new flow costs one lookup and one insert. */
static __always_inline void *ti_existing_or_insert(void *map, const void *key, const void *init)
{
	void *v = bpf_map_lookup_elem(map, key);

	if (v || !bpf_map_update_elem(map, key, init, BPF_NOEXIST))
		return v;
	return bpf_map_lookup_elem(map, key); /* another CPU inserted it first */
}

static __always_inline void ti_aggregate(const struct ti_event *e, struct ti_scratch *x)
{
	struct ti_flow_val *fv;
	struct ti_port_val *pv;
	struct ti_source_val *sv;
	__u32 slot;
	__u64 *h;

	__builtin_memset(&x->fk, 0, sizeof(*x) - offsetof(struct ti_scratch, fk));
	x->fk.family = e->family;
	x->fk.sport = e->sport;
	x->fk.dport = e->dport;
	__builtin_memcpy(x->fk.saddr, e->saddr, 16);
	__builtin_memcpy(x->fk.daddr, e->daddr, 16);
	x->finit.packets = 1;
	x->finit.bytes = e->len;
	x->finit.first_ts = x->finit.last_ts = e->ts;
	x->finit.flags_seen = e->flags;
	fv = ti_existing_or_insert(&flows, &x->fk, &x->finit);
	if (fv) {
		__sync_fetch_and_add(&fv->packets, 1);
		__sync_fetch_and_add(&fv->bytes, e->len);
		__sync_fetch_and_or(&fv->flags_seen, (__u32)e->flags);
		fv->last_ts = e->ts;
	}

	x->dport = e->dport;
	x->pinit.packets = 1;
	x->pinit.bytes = e->len;
	pv = ti_existing_or_insert(&ports, &x->dport, &x->pinit);
	if (pv) {
		__sync_fetch_and_add(&pv->packets, 1);
		__sync_fetch_and_add(&pv->bytes, e->len);
	}

	x->ak.family = e->family;
	__builtin_memcpy(x->ak.addr, e->saddr, 16);
	x->sinit.packets = 1;
	x->sinit.bytes = e->len;
	x->sinit.syns = (e->flags & (TI_SYN | TI_ACK)) == TI_SYN;
	sv = ti_existing_or_insert(&sources, &x->ak, &x->sinit);
	if (sv) {
		__sync_fetch_and_add(&sv->packets, 1);
		__sync_fetch_and_add(&sv->bytes, e->len);
		if ((e->flags & (TI_SYN | TI_ACK)) == TI_SYN)
			__sync_fetch_and_add(&sv->syns, 1);
	}

	slot = ti_log2_slot(e->len);
	h = bpf_map_lookup_elem(&len_hist, &slot);
	if (h)
		*h += 1;
}

/* ---- emit ----------------------------------------------------------------- */

static __always_inline int ti_sampled_out(const struct ti_event *e)
{
	__u32 zero = 0;
	__u64 *n;

	if (ti_load.sample <= 1 || (e->flags & (TI_SYN | TI_FIN | TI_RST)))
		return 0;
	n = bpf_map_lookup_elem(&sample_ctr, &zero);
	if (!n)
		return 0;
	return (*n)++ % ti_load.sample != 0;
}

static __always_inline void ti_emit(const struct ti_event *e, struct ti_scratch *x)
{
	struct ti_event *r;
	__u64 flags;

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
	/* Batched wakeups: every CPU wakes the reader on every `wakeup`-th
	 * record it submits, counted in its own scratch.  A count cannot be
	 * jumped over, so no wakeup is lost however many CPUs submit at once
	 * (a window on the pending bytes could be: two CPUs reserving together
	 * skipped it).  The reader drains everything once woken, and its poll
	 * timeout bounds the latency of the records in between; user space
	 * caps `wakeup` so that all CPUs together leave at most half the ring
	 * waiting.  Waking on every record while the reader is behind cost
	 * ~5 us per record in `make bench`. */
	x->ring_count++;
	flags = x->ring_count % ti_load.wakeup == 0 ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
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
	__u32 slot = ti_cfg_slot & 1, zero = 0;
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
		ti_emit(e, x);
	return 0;
}

static __always_inline struct ti_scratch *ti_scratch_get(__u8 probe)
{
	__u32 zero = 0;
	struct ti_scratch *x = bpf_map_lookup_elem(&scratch, &zero);

	if (x) {
		__builtin_memset(&x->ev, 0, sizeof(x->ev) + sizeof(x->ip) + sizeof(x->th));
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
static __always_inline int ti_sk_buff_segment(struct __sk_buff *skb, __u32 off,
					      struct ti_scratch *x)
{
	__u32 l4_off, iplen, avail;
	__u8 h[2];

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
		__u8 nh;

		if (bpf_skb_load_bytes(skb, off, x->ip, 40))
			return 0;
		nh = x->ip[6];
		if ((x->ip[0] >> 4) != 6)
			return nh == IPPROTO_TCP_ ? -1 : 0;
		l4_off = 40;
		for (int i = 0; i < TI_V6_EXT_MAX; i++) {
			if (nh == IPPROTO_TCP_)
				break;
			if (nh != IPPROTO_HOPOPTS_ && nh != IPPROTO_ROUTING_ && nh != IPPROTO_DSTOPTS_ &&
			    nh != IPPROTO_AH_ && nh != IPPROTO_FRAGMENT_)
				return 0; /* UDP, ICMPv6, no next header, ...: not TCP */
			if (bpf_skb_load_bytes(skb, off + l4_off, h, 2))
				return -1;
			if (nh == IPPROTO_FRAGMENT_) /* a fragment: of TCP? */
				return h[0] == IPPROTO_TCP_ ? -1 : 0;
			l4_off += nh == IPPROTO_AH_ ? ((__u32)h[1] + 2) * 4 : ((__u32)h[1] + 1) * 8;
			nh = h[0];
		}
		if (nh != IPPROTO_TCP_)
			return -1; /* too many extension headers to tell */
		iplen = 40 + (((__u32)x->ip[4] << 8) | x->ip[5]);
	}
	if (iplen > avail || l4_off + sizeof(x->th) > iplen)
		return -1;
	if (bpf_skb_load_bytes(skb, off + l4_off, &x->th, sizeof(x->th)))
		return -1;
	return ti_parse(&x->ev, x->ip, l4_off, &x->th) ? -1 : 1;
}

static __always_inline void ti_from_sk_buff(struct __sk_buff *skb, __u32 off, __u8 probe)
{
	struct ti_scratch *x;
	int r;

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
	else if (r > 0)
		ti_handle();
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
