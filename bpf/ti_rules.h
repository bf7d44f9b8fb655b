/* SPDX-License-Identifier: GPL-2.0-only */
/* ti_rules.h: what happens to a parsed segment -- filter, aggregate,
 * sample -- plain C compiled for both targets: the BPF program
 * (bpf/tcpinspect.bpf.c) runs every segment through ti_path(), and the pcap
 * replay (luaext/kernel_replay.c) runs every captured segment through the
 * very same code, so its counters, maps and deliveries follow the kernel's
 * rules: the same filter tests in the same order, the same table placement
 * and eviction (bpf/ti_table.h), the same histogram slots, the same
 * sampling.
 *
 * The includer defines, before including it:
 *   TI_LOAD_CFG(x)          the struct ti_load_config in force (BPF: ti_load)
 *   TI_COUNT(x, stat)       add 1 to counter stat (enum ti_stat)
 *   TI_LOOKUP(x, map, key)  a pointer to element *key of map (flows,
 *                           sources, their summaries flows_sum and
 *                           sources_sum, ports, len_hist, sample_ctr: this
 *                           CPU's copy), or NULL (BPF: bpf_map_lookup_elem)
 *   TI_LPM_HAS(x, trie, key)  nonzero when the LPM trie (saddr_lpm,
 *                           daddr_lpm, host_lpm) has a prefix of key
 *   TI_EMIT(x, e)           deliver the segment e (the ring, in BPF)
 *   TI_EXPR_MATCH(x, c)     the verdict of c's filter expression (c->expr,
 *                           bpf/ti_cbpf.h) on x->pkt: nonzero accepts (BPF:
 *                           one instruction per bpf_loop iteration)
 *   TI_CONN_LOOKUP(x, k)    the "conns" entry of key k (struct ti_conn *), or NULL
 *   TI_CONN_INSERT(x, k, v) add entry k = *v if k is not there: 0, -17
 *                           (EEXIST: another CPU added it), other < 0: full
 *   TI_CONN_DELETE(x, k)    remove entry k
 *   TI_CONN_EMIT(x)         the conn-end record of x->ev (its key) and x->cv
 * x is the struct ti_scratch of the segment being handled.
 */
#ifndef TI_RULES_H
#define TI_RULES_H

#include "tcpinspect.h"
#include "ti_table.h"
#include "ti_parse.h"
#include "ti_cbpf.h"
#include "ti_conn.h"

/* Stack slots: the one explanation, which the other BPF-side comments
 * (ti_parse.h, ti_cbpf.h, tcpinspect.bpf.c, below) point to.
 *
 * Without CAP_PERFMON, the verifier of Linux 6.1 refuses a store of fewer
 * than 8 bytes into a stack slot that holds a spilled pointer ("attempt to
 * corrupt spilled pointer on stack"), and clang gives a spilled pointer's
 * slot to any later local.  So everything the BPF programs keep on the
 * stack is a 64-bit scalar: map keys (the maps read only their first 4
 * bytes: BPF is little-endian), carried values, indexes.  What cannot be
 * one -- byte buffers, copied headers, walk state, the counter of a loop
 * clang does not unroll -- lives in the hook's scratch slot (struct
 * ti_scratch, below), a map value, where it is plain memory. */

/* clang unrolls the 4-way loops (the verifier then sees straight code); gcc
 * builds them for user space as they are. */
#ifdef __clang__
#define TI_UNROLL _Pragma("unroll")
#else
#define TI_UNROLL
#endif

/* The segment being handled and the keys of its lookups, off the stack
 * ("Stack slots", above).  In BPF: an element of the per-CPU array
 * "scratch", which holds TI_SCRATCH_SLOTS (4) of them per CPU: hook runs
 * can interleave on a CPU (PREEMPT_RT), and each owns one slot while it
 * runs (busy; bpf/tcpinspect.bpf.c, ti_scratch_get).  In the pcap replay:
 * one, the first member of struct ti_replay (luaext/kernel_replay.c). */
struct ti_scratch {
	struct ti_event ev;	   /* the segment being handled */
	__u8 pkt[2 * TI_PKT_MAX];  /* its first bytes from the IP header on, at most
				   * TI_PKT_MAX (ti_bytes_wanted; twice that room for
				   * the verifier: ti_bounded in tcpinspect.bpf.c);
				   * right after ev, so that a record with its bytes
				   * is one copy into the ring */
	__u64 buflen;		   /* bytes in pkt */
	__u64 cfg_slot;		   /* the filter slot the bytes were copied for */
	struct ti_cbpf_state cbpf; /* the filter expression's interpreter */
	struct ti_walk w;	   /* its headers (bpf/ti_parse.h) */
	__u32 entry;		   /* the table entry being looked up (ti_count_*) */
	__u32 bucket;		   /* ... and its bucket: its summary's index */
	__u64 busy;		   /* BPF: 1 while a hook run owns this slot */
	__u64 sslot;		   /* BPF: this scratch slot's index, for ti_handle */
	__u64 skb;		   /* BPF, sockets = true in fentry/kprobe: the sk_buff whose
		      * socket the socket-side hook is to name (0: none pending) */
	__u64 task;		   /* ... and the task whose tcp_v{4,6}_rcv run claimed the slot */
	/* keys, each zeroed by ti_aggregate before the map that takes it */
	struct ti_flow_key fk;
	struct ti_addr_key ak;
	struct ti_lpm_key lk;
	struct ti_drop_key dk; /* the drop path's (ti_drop_path) */
	/* conns = true (ti_conn_track) */
	struct ti_conn_key ck;
	struct ti_conn cv; /* a new entry; the ended one for its record */
	__u64 conn_end;	   /* the segment ended its connection (RST; a SYN after a FIN) */
};

/* ---- the segment's bytes ---------------------------------------------------- */

/* How many bytes of the segment, from its IP header on, the hook copies
 * into x->pkt for the filter slot in force (c, slot): what the snaplen and
 * c's filter expression need (TI_CBPF_WINDOW), at most the segment itself
 * (wirelen: no Ethernet padding), what the hook can read (avail) and
 * TI_PKT_MAX.  Also sets x->cfg_slot, so that the path filters
 * with the configuration the copy was made for. */
TI_INLINE __u64 ti_bytes_wanted(struct ti_scratch *x, const struct ti_config *c, __u64 slot, __u64 avail)
{
	__u64 n = TI_LOAD_CFG(x).snaplen, wirelen;

	x->cfg_slot = slot;
	wirelen = x->ev.wirelen; /* ti_parse's */
	if (c->expr.len && n < TI_CBPF_WINDOW)
		n = TI_CBPF_WINDOW;
	if (n > wirelen)
		n = wirelen;
	if (n > avail)
		n = avail;
	if (n > TI_PKT_MAX)
		n = TI_PKT_MAX;
	return n;
}

/* n bytes were copied (0: none, or the copy failed) */
TI_INLINE void ti_bytes_copied(struct ti_scratch *x, __u64 n)
{
	x->buflen = n;
	x->ev.caplen = n < TI_LOAD_CFG(x).snaplen ? n : TI_LOAD_CFG(x).snaplen;
}

/* ---- filter --------------------------------------------------------------- */

TI_INLINE int ti_port_in(const __u8 *bits, __u16 port)
{
	return bits[port >> 3] & (1 << (port & 7));
}

/* The LPM key of addr (x->lk), for TI_LPM_HAS. */
TI_INLINE struct ti_lpm_key *ti_lpm_key_of(__u32 slot, const struct ti_event *e, const __u8 *addr, struct ti_scratch *x)
{
	x->lk.prefixlen = 16 + (e->family == 4 ? 32 : 128);
	x->lk.slot = slot;
	x->lk.family = e->family;
	__builtin_memcpy(x->lk.addr, addr, 16);
	return &x->lk;
}

/* addr is in the trie's prefixes of this slot and family */
#define ti_addr_in(trie, slot, e, addr, x) TI_LPM_HAS(x, trie, ti_lpm_key_of(slot, e, addr, x))

TI_INLINE int ti_filter(const struct ti_config *c, __u32 slot, const struct ti_event *e, struct ti_scratch *x)
{
	__u32 m = c->match;

	if (TI_LOAD_CFG(x).family && e->family != TI_LOAD_CFG(x).family)
		return 0;
	if (!m)
		return 1;
	if ((m & TI_M_FAMILY) && e->family != c->family)
		return 0;
	if ((m & TI_M_SPORT) && !ti_port_in(c->sport_bits, e->sport))
		return 0;
	if ((m & TI_M_DPORT) && !ti_port_in(c->dport_bits, e->dport))
		return 0;
	if ((m & TI_M_PORT) && !ti_port_in(c->port_bits, e->sport) && !ti_port_in(c->port_bits, e->dport))
		return 0;
	if ((m & TI_M_FLAGS) && !(e->flags & c->flags_any))
		return 0;
	if ((m & TI_M_LEN) && (e->len < c->len_min || e->len > c->len_max))
		return 0;
	if ((m & TI_M_IFINDEX) && e->ifindex != c->ifindex)
		return 0;
	if ((m & TI_M_UID) && (!(e->sk_flags & TI_SK_UID) || e->uid != c->uid))
		return 0;
	if ((m & TI_M_SK_STATE) && !(c->sk_states & (1U << (e->sk_state & 31))))
		return 0;
	if ((m & TI_M_SADDR) && !ti_addr_in(saddr_lpm, slot, e, e->saddr, x))
		return 0;
	if ((m & TI_M_DADDR) && !ti_addr_in(daddr_lpm, slot, e, e->daddr, x))
		return 0;
	if ((m & TI_M_HOST) && !ti_addr_in(host_lpm, slot, e, e->saddr, x) &&
	    !ti_addr_in(host_lpm, slot, e, e->daddr, x))
		return 0;
	return 1;
}

/* ---- aggregate ------------------------------------------------------------ */

/* 0 for 0, else 1 + floor(log2(v)): 1 for 1, 2 for 2-3, 3 for 4-7, ...
 * Straight-line code: a loop here multiplies the verifier's states. */
TI_INLINE __u32 ti_log2_slot(__u32 v)
{
	__u32 r = 0;

	if (v >= 1 << 16) {
		v >>= 16;
		r += 16;
	}
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

/* a SYN without ACK: a connection attempt, counted per source */
#define TI_IS_SYN(e) ((__u64)(((e)->flags & (TI_SYN | TI_ACK)) == TI_SYN))

/* Add e to its key's entry in one of this CPU's tables (flows, sources,
 * drops): the matching entry of its bucket, else a free one, else the one
 * with the fewest packets (evicted, and counted).  Keeping the heavy
 * entries means a flood of one-segment flows churns among itself while the
 * flows that matter stay.  The bucket's summary (sum, bpf/ti_table.h)
 * chooses: only an entry whose hash is the key's is read (and its key
 * compared), and a new key's way is picked from the summary alone, so a
 * segment reads the summary and at most one entry per hash match (one,
 * but for a 32-bit collision).  One scan for every table, written once as
 * a macro because a BPF map lookup names its map at compile time (it
 * cannot be an argument); each table brings its key's hash and equality
 * and what a hit and a new entry store (HIT(en, e, syn), FILL(en, e, syn);
 * FILL after the key is copied in; syn: the segment is a connection
 * attempt, for the sources).
 *
 * Every entry is a map element of its own, looked up by index, and only
 * indexes are carried from one step to the next, never pointers into a
 * bucket: without CAP_PERFMON the verifiers of 6.1 and later refuse the
 * pointer arithmetic clang makes of an entry chosen among four ("pointer
 * arithmetic with it prohibited for !root", "invalid mem access
 * 'scalar'").  The summary's ways are read and written at constant
 * offsets only (the unrolled loops; the chosen way is written by the
 * iteration whose w it is).  Array lookups are inlined by the verifier: a
 * few instructions each.  The hash and indexes are 64-bit ("Stack slots",
 * above). */
#define TI_TABLE_COUNTER(name, map, sum_map, key_type, entry_type, hash, key_eq, evicted, HIT, FILL) \
	TI_INLINE void name(const struct ti_event *e, const key_type *k, struct ti_scratch *x)       \
	{                                                                                            \
		__u64 h = hash(k), fewest = ~0ULL, syn = TI_IS_SYN(e);                               \
		__s64 slot = -1, victim = 0; /* 64-bit: "Stack slots", above */                      \
		struct ti_table_sum *s;                                                              \
		entry_type *en;                                                                      \
                                                                                                     \
		x->bucket = h & TI_LOAD_CFG(x).table_mask;                                           \
		s = TI_LOOKUP(x, sum_map, &x->bucket);                                               \
		if (!s)                                                                              \
			return;                                                                      \
		TI_UNROLL                                                                            \
		for (int w = 0; w < TI_TABLE_WAYS; w++) {                                            \
			if (!s->packets[w]) {                                                        \
				if (slot < 0)                                                        \
					slot = w;                                                    \
				continue;                                                            \
			}                                                                            \
			if (s->tag[w] == (__u32)h) {                                                 \
				x->entry = x->bucket * TI_TABLE_WAYS + w;                            \
				en = TI_LOOKUP(x, map, &x->entry);                                   \
				if (!en)                                                             \
					return;                                                      \
				if (key_eq(&en->key, k)) {                                           \
					HIT(en, e, syn);                                             \
					s->packets[w] = ti_sum_packets(en->val.packets);             \
					return;                                                      \
				}                                                                    \
			}                                                                            \
			if (s->packets[w] < fewest) {                                                \
				fewest = s->packets[w];                                              \
				victim = w;                                                          \
			}                                                                            \
		}                                                                                    \
		if (slot < 0) {                                                                      \
			TI_COUNT(x, evicted);                                                        \
			slot = victim;                                                               \
		}                                                                                    \
		x->entry = x->bucket * TI_TABLE_WAYS + (slot & (TI_TABLE_WAYS - 1));                 \
		en = TI_LOOKUP(x, map, &x->entry);                                                   \
		if (!en)                                                                             \
			return;                                                                      \
		en->key = *k;                                                                        \
		FILL(en, e, syn);                                                                    \
		TI_UNROLL                                                                            \
		for (int w = 0; w < TI_TABLE_WAYS; w++) {                                            \
			if (w == slot) {                                                             \
				s->tag[w] = (__u32)h;                                                \
				s->packets[w] = ti_sum_packets(en->val.packets);                     \
			}                                                                            \
		}                                                                                    \
	}

TI_INLINE void ti_flow_hit(struct ti_flow_entry *en, const struct ti_event *e, __u64 syn)
{
	en->val.packets++;
	en->val.bytes += e->len;
	en->val.last_ts = e->ts;
	en->val.flags_seen |= e->flags;
}

TI_INLINE void ti_flow_fill(struct ti_flow_entry *en, const struct ti_event *e, __u64 syn)
{
	en->val.packets = 1;
	en->val.bytes = e->len;
	en->val.first_ts = en->val.last_ts = e->ts;
	en->val.flags_seen = e->flags;
}

TI_INLINE void ti_source_hit(struct ti_source_entry *en, const struct ti_event *e, __u64 syn)
{
	en->val.packets++;
	en->val.bytes += e->len;
	en->val.syns += syn;
}

TI_INLINE void ti_source_fill(struct ti_source_entry *en, const struct ti_event *e, __u64 syn)
{
	en->val.packets = 1;
	en->val.bytes = e->len;
	en->val.syns = syn;
}

TI_TABLE_COUNTER(ti_count_flow, flows, flows_sum, struct ti_flow_key, struct ti_flow_entry, ti_flow_hash,
		 ti_flow_key_eq, TI_STAT_EVICTED_FLOWS, ti_flow_hit, ti_flow_fill)
TI_TABLE_COUNTER(ti_count_source, sources, sources_sum, struct ti_addr_key, struct ti_source_entry, ti_addr_hash,
		 ti_addr_key_eq, TI_STAT_EVICTED_SOURCES, ti_source_hit, ti_source_fill)

TI_INLINE void ti_aggregate(const struct ti_event *e, struct ti_scratch *x)
{
	struct ti_port_val *pv;
	__u64 slot, port = e->dport; /* 64-bit keys (above) */
	__u64 *h;

	if (TI_LOAD_CFG(x).aggregates & TI_AGG_FLOWS) {
		__builtin_memset(&x->fk, 0, sizeof(x->fk)); /* its padding too: hashed */
		x->fk.family = e->family;
		x->fk.sport = e->sport;
		x->fk.dport = e->dport;
		__builtin_memcpy(x->fk.saddr, e->saddr, 16);
		__builtin_memcpy(x->fk.daddr, e->daddr, 16);
		ti_count_flow(e, &x->fk, x);
	}

	if (TI_LOAD_CFG(x).aggregates & TI_AGG_PORTS) {
		pv = TI_LOOKUP(x, ports, &port);
		if (pv) {
			pv->packets++;
			pv->bytes += e->len;
		}
	}

	if (TI_LOAD_CFG(x).aggregates & TI_AGG_SOURCES) {
		__builtin_memset(&x->ak, 0, sizeof(x->ak));
		x->ak.family = e->family;
		__builtin_memcpy(x->ak.addr, e->saddr, 16);
		ti_count_source(e, &x->ak, x);
	}

	if (TI_LOAD_CFG(x).aggregates & TI_AGG_LEN_HIST) {
		slot = ti_log2_slot(e->len);
		h = TI_LOOKUP(x, len_hist, &slot);
		if (h)
			*h += 1;
	}
}

/* ---- sample --------------------------------------------------------------- */

TI_INLINE int ti_sampled_out(const struct ti_event *e, struct ti_scratch *x)
{
	__u64 zero = 0;
	__u64 *n;

	if (TI_LOAD_CFG(x).sample <= 1 || (e->flags & (TI_SYN | TI_FIN | TI_RST)))
		return 0;
	n = TI_LOOKUP(x, sample_ctr, &zero);
	if (!n)
		return 0;
	return (*n)++ % TI_LOAD_CFG(x).sample != 0;
}

/* ---- connections (conns = true; bpf/ti_conn.h) ----------------------------- */

/* The segment in x->ev into its connection's entry of the "conns" table,
 * which is made if there is none (room permitting: else counted as
 * conns_untracked); a RST ends it at once: the entry leaves the table and
 * x->conn_end asks the path for its record.  A FIN keeps the entry until
 * user space's walk ends it (fin_timeout), so that the last ACK of the
 * close finds it rather than opening a connection of its own. */
TI_INLINE void ti_conn_track(struct ti_scratch *x)
{
	const struct ti_event *e = &x->ev;
	struct ti_conn *c;
	long rc;

	x->conn_end = 0;
	ti_conn_key_of(&x->ck, e);
	c = TI_CONN_LOOKUP(x, &x->ck);
	if (!c) {
		ti_conn_init(&x->cv, e);
		rc = TI_CONN_INSERT(x, &x->ck, &x->cv);
		if (rc == 0)
			TI_COUNT(x, TI_STAT_CONNS_OPENED);
		if (rc == 0 || rc == -17)
			c = TI_CONN_LOOKUP(x, &x->ck);
		if (!c) {
			TI_COUNT(x, TI_STAT_CONNS_UNTRACKED);
			return;
		}
	}
	/* a SYN on a 4-tuple whose connection got a FIN is the next
	 * connection on it (the port used again within the FIN timeout): the
	 * closing one ends "fin" now and the entry starts over with this
	 * segment, as Zeek starts a new connection; a SYN never follows a FIN
	 * within one connection */
	if ((e->flags & (TI_SYN | TI_RST)) == TI_SYN && c->fin) {
		x->cv = *c;
		x->cv.end = TI_CONN_END_FIN;
		ti_conn_init(c, e);
		TI_COUNT(x, TI_STAT_CONNS_OPENED);
		x->conn_end = 1;
	}
	if (ti_conn_step(c, e)) {
		x->cv = *c;
		TI_CONN_DELETE(x, &x->ck);
		x->conn_end = 1;
	}
}

/* ---- the one path ----------------------------------------------------------- */

/* Counters, filter, aggregates, sampling, delivery of the segment in
 * x->ev, with the filter c (the active slot, slot).  The identities of
 * tcpinspect.h's counters hold because every segment takes one branch. */
/* The session's filter on the segment in x->ev: the native tests first
 * (cheap), then the expression; both must match.  Received segments and
 * drops take the same test. */
TI_INLINE int ti_match(struct ti_scratch *x, const struct ti_config *c, __u32 slot)
{
	return ti_filter(c, slot, &x->ev, x) && (!c->expr.len || TI_EXPR_MATCH(x, c));
}

TI_INLINE void ti_path(struct ti_scratch *x, const struct ti_config *c, __u32 slot)
{
	const struct ti_event *e = &x->ev;

	TI_COUNT(x, TI_STAT_SEEN);
	if (!ti_match(x, c, slot)) {
		TI_COUNT(x, TI_STAT_FILTERED);
		return;
	}
	TI_COUNT(x, TI_STAT_MATCHED);
	if (TI_LOAD_CFG(x).conns)
		ti_conn_track(x);
	if (TI_LOAD_CFG(x).aggregates & (TI_AGG_FLOWS | TI_AGG_PORTS | TI_AGG_SOURCES | TI_AGG_LEN_HIST))
		ti_aggregate(e, x);
	if (TI_LOAD_CFG(x).events) {
		if (ti_sampled_out(e, x))
			TI_COUNT(x, TI_STAT_SAMPLED_OUT);
		else
			TI_EMIT(x, e);
	}
	/* after the segment's record: the end follows the segment that made it */
	if (TI_LOAD_CFG(x).conns && x->conn_end)
		TI_CONN_EMIT(x);
}

/* The path of a dropped segment (x->ev, its reason and location filled;
 * probe TI_PROBE_KFREE_SKB): its own counters (tcpinspect.h, "drop_ctr"),
 * the same filter as a received segment, its reason counted, its entry
 * in the "drops" table (reason x dport x source; its TI_AGG_DROPS bit), then the
 * record; not in the segments' aggregates (the segment, if it reached a
 * probe, is in them already) and no sampling.  Only an includer with a drop hook defines
 *   TI_DROP_COUNT(x, i)     add 1 to drop counter i (0 ..
 *                           TI_DROP_CTR_SLOTS - 1)
 * (BPF: the per-CPU array drop_ctr); the pcap replay has no drops: a
 * capture holds no fates.  TI_EMIT counts the record as delivered or
 * lost by its probe. */
#ifdef TI_DROP_COUNT
TI_INLINE void ti_drop_hit(struct ti_drop_entry *en, const struct ti_event *e, __u64 syn)
{
	en->val.packets++;
	en->val.bytes += e->len;
	en->val.last_ts = e->ts;
}

TI_INLINE void ti_drop_fill(struct ti_drop_entry *en, const struct ti_event *e, __u64 syn)
{
	en->val.packets = 1;
	en->val.bytes = e->len;
	en->val.first_ts = en->val.last_ts = e->ts;
}

TI_TABLE_COUNTER(ti_count_drop, drops, drops_sum, struct ti_drop_key, struct ti_drop_entry, ti_drop_hash,
		 ti_drop_key_eq, TI_STAT_EVICTED_DROPS, ti_drop_hit, ti_drop_fill)

/* The "drops" table's entry of the drop in x->ev: reason x dport x source. */
TI_INLINE void ti_aggregate_drop(const struct ti_event *e, struct ti_scratch *x)
{
	__builtin_memset(&x->dk, 0, sizeof(x->dk));
	x->dk.reason = e->reason;
	x->dk.family = e->family;
	x->dk.dport = e->dport;
	__builtin_memcpy(x->dk.saddr, e->saddr, 16);
	ti_count_drop(e, &x->dk, x);
}

TI_INLINE void ti_drop_path(struct ti_scratch *x, const struct ti_config *c, __u32 slot)
{
	const struct ti_event *e = &x->ev;
	__u64 r = e->reason; /* 64-bit: "Stack slots", above */

	TI_DROP_COUNT(x, TI_DROP_REASON_SLOTS + TI_DROP_SEEN);
	if (!ti_match(x, c, slot)) {
		TI_DROP_COUNT(x, TI_DROP_REASON_SLOTS + TI_DROP_FILTERED);
		return;
	}
	TI_DROP_COUNT(x, TI_DROP_REASON_SLOTS + TI_DROP_MATCHED);
	TI_DROP_COUNT(x, r < TI_DROP_REASON_SLOTS ? r : TI_DROP_REASON_SLOTS - 1);
	if (TI_LOAD_CFG(x).aggregates & TI_AGG_DROPS)
		ti_aggregate_drop(e, x);
	if (TI_LOAD_CFG(x).events)
		TI_EMIT(x, e);
}
#endif

#endif /* TI_RULES_H */
