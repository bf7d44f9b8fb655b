// SPDX-License-Identifier: GPL-2.0-only
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

/* The frame walk loads from the __sk_buff (bpf/ti_parse.h): straight from
 * the packet (skb->data .. data_end: direct packet access) where the bytes
 * are in the linear area, which on the receive path holds the headers;
 * else with bpf_skb_load_bytes.  Both count off from skb->data (tc: the
 * Ethernet header; cgroup_skb: the IP header), so they read the same
 * bytes.  Without CAP_PERFMON the verifier takes a packet pointer plus a
 * constant only ("pointer arithmetic with it prohibited for !root": it
 * cannot mask a register's offset against speculation), so the direct copy
 * is for constant offsets: the IP header's (the hook's), and the TCP
 * header's where it is at one of the common places (IPv4 without options,
 * IPv6 without extension headers, after an Ethernet header or not); any
 * other offset takes the helper.  n is a constant at every use (the
 * headers' sizes, 2 .. 40, even); the destination is 4-byte aligned
 * (struct ti_walk), so the copy is 32-bit words: loads from the packet
 * need no alignment (x86's verifier and CPU take them unaligned). */
static __always_inline int ti_pkt_copy(struct __sk_buff *skb, __u64 off, void *dst, __u64 n)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;

	if (data + off + n > end)
		return -1;
#pragma unroll
	for (int i = 0; i < n / 4; i++)
		((__u32 *)dst)[i] = ((const __u32 *)(data + off))[i];
	if (n & 2)
		((__u16 *)dst)[n / 2 - 1] = ((const __u16 *)(data + off))[n / 2 - 1];
	return 0;
}

#define ETH_HLEN 14

static __always_inline long ti_skb_load(struct __sk_buff *skb, __u64 off, void *dst, __u64 n)
{
	if (__builtin_constant_p(off)) {
		if (!ti_pkt_copy(skb, off, dst, n))
			return 0;
	} else if (n != 20) {
		/* not the TCP header (20 bytes): IPv6 extension headers take
		 * the helper, which keeps the verifier's paths few on 6.1
		 * without CAP_PERFMON */
	} else if (off == 20) {
		if (!ti_pkt_copy(skb, 20, dst, n))
			return 0;
	} else if (off == 40) {
		if (!ti_pkt_copy(skb, 40, dst, n))
			return 0;
	} else if (off == ETH_HLEN + 20) {
		if (!ti_pkt_copy(skb, ETH_HLEN + 20, dst, n))
			return 0;
	} else if (off == ETH_HLEN + 40) {
		if (!ti_pkt_copy(skb, ETH_HLEN + 40, dst, n))
			return 0;
	}
	return bpf_skb_load_bytes(skb, off, dst, n);
}

#define TI_PARSE_CTX struct __sk_buff *
#define TI_PARSE_LOAD(skb, off, dst, n) ti_skb_load(skb, off, dst, n)
#define TI_PARSE_GSO(skb) ((skb)->gso_size != 0)
#include "ti_parse.h"

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define PACKET_HOST_ 0

char LICENSE[] SEC("license") = "GPL";

/* Load-time options (struct ti_load_config: sample, events, aggregates,
 * wakeup, netns, family, the table size, snaplen, the scope: a netns
 * inode, a cgroup id and its level, and kernel addresses from
 * /proc/kallsyms): set by user space before load (luaext/kernel.c),
 * constants to the verifier. */
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

/* The tables' summaries (ti_table.h): one element per bucket, resized by
 * user space with their table (one element when the table is off). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4096); /* buckets, resized by user space */
	__type(key, __u32);
	__type(value, struct ti_table_sum);
} flows_sum SEC(".maps");

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
	__uint(max_entries, 4096); /* buckets, resized with sources */
	__type(key, __u32);
	__type(value, struct ti_table_sum);
} sources_sum SEC(".maps");

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

/* Drops by reason x destination port x source: a set-associative table as
 * flows (ti_table.h), sized with it when drops = true, one bucket else. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 16384); /* entries, resized by user space */
	__type(key, __u32);
	__type(value, struct ti_drop_entry);
} drops SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4096); /* buckets, resized with drops */
	__type(key, __u32);
	__type(value, struct ti_table_sum);
} drops_sum SEC(".maps");

/* Drops: per-reason counts, then the drop path's counters (tcpinspect.h,
 * TI_DROP_STATS).  Written only by the drop hook, which loads only with
 * drops = true. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TI_DROP_CTR_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} drop_ctr SEC(".maps");

/* conns = true: one entry per connection's incoming direction (bpf/ti_conn.h),
 * shared by every CPU (a flow's segments can arrive on several: lo, veth),
 * max_conns entries (resized by user space; 1 with conns off, never
 * written); user space's walk ends the timed-out ones (kernel_conns.c). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct ti_conn_key);
	__type(value, struct ti_conn);
} conns SEC(".maps");

/* The counters, per CPU in .bss (struct ti_cpu_ctr, tcpinspect.h): one
 * block of cache lines per CPU, read by user space through the mmap-ed
 * .bss.  A CPU past TI_CTR_CPUS counts in the "stats" map, whose key is
 * 64-bit though the map reads only 4 bytes of it (bpf/ti_rules.h, "Stack
 * slots"). */
struct ti_cpu_ctr ti_ctr[TI_CTR_CPUS];

static __always_inline void ti_count(__u32 stat)
{
	__u64 cpu = bpf_get_smp_processor_id(), key = stat;
	__u64 *v;

	if (cpu < TI_CTR_CPUS && key < TI_STAT_MAX) {
		ti_ctr[cpu].stat[key] += 1;
		return;
	}
	v = bpf_map_lookup_elem(&stats, &key);
	if (v)
		*v += 1;
}

static __always_inline void ti_drop_count(__u64 i)
{
	__u64 *v = bpf_map_lookup_elem(&drop_ctr, &i);

	if (v)
		*v += 1;
}

/* A record went to the ring (ok) or found it full: counted as the
 * record's kind (a drop, or a received segment). */
static __always_inline void ti_count_emit(const struct ti_event *e, int ok)
{
	if (e->probe == TI_PROBE_KFREE_SKB)
		ti_drop_count(TI_DROP_REASON_SLOTS + (ok ? TI_DROP_DELIVERED : TI_DROP_LOST));
	else
		ti_count(ok ? TI_STAT_DELIVERED : TI_STAT_DROPPED);
}

/* ---- parse: bpf/ti_parse.h (ti_parse, ti_frame_segment) ------------------- */
/* ---- filter, aggregate, sample: bpf/ti_rules.h (ti_path) ------------------ */

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

/* A helper's size argument of 1 .. 2 * TI_PKT_MAX, n itself when n is
 * 1 .. TI_PKT_MAX.  Needed inside `if (n)`: where the verifier knows n
 * (0, say), it still walks the other side of the branch for Spectre v1
 * without CAP_PERFMON (6.1), with n marked unknown. */
static __always_inline __u64 ti_size_arg(__u64 n)
{
	ti_barrier_var(n);
	return ((n - 1) & (2 * TI_PKT_MAX - 1)) + 1;
}

struct ti_scratch;
static __always_inline void ti_emit(const struct ti_event *e);
static __always_inline void ti_conn_emit(struct ti_scratch *x);
static __always_inline int ti_expr_match(struct ti_scratch *x, __u64 len);

#define TI_LOAD_CFG(x) ti_load
#define TI_COUNT(x, stat) ti_count(stat)
#define TI_LOOKUP(x, map, key) bpf_map_lookup_elem(&map, key)
#define TI_LPM_HAS(x, trie, key) (bpf_map_lookup_elem(&trie, key) != NULL)
#ifndef TI_TEST_CLOBBER
#define TI_EMIT(x, e) ti_emit(e)
#else
static long ti_test_spin(__u32 i, void *ctx)
{
	return 0;
}
#define TI_EMIT(x, e) (bpf_loop(100000, ti_test_spin, 0, 0), ti_emit(e))
#endif
#define TI_EXPR_MATCH(x, c) ti_expr_match(x, (c)->expr.len)
#define TI_DROP_COUNT(x, i) ti_drop_count(i)
#define TI_CONN_LOOKUP(x, k) ((struct ti_conn *)bpf_map_lookup_elem(&conns, k))
#define TI_CONN_INSERT(x, k, v) bpf_map_update_elem(&conns, k, v, BPF_NOEXIST)
#define TI_CONN_DELETE(x, k) bpf_map_delete_elem(&conns, k)
#define TI_CONN_EMIT(x) ti_conn_emit(x)
#include "ti_rules.h"

/* The scratch space of the segment being handled (struct ti_scratch,
 * bpf/ti_rules.h): TI_SCRATCH_SLOTS per CPU, in a per-CPU map.
 *
 * Hooks run with migration disabled, but not always with preemption
 * disabled: on PREEMPT_RT, softirqs run in preemptible task context, and
 * once the per-CPU BH lock is gone (CONFIG_PREEMPT_RT_NEEDS_BH_LOCK unset,
 * mainline since 2025) a second run can start on a CPU while a first one is
 * preempted there, and they can end in any order.  So a run owns the slot
 * whose `busy` it swapped from 0 to 1 (an atomic exchange: nothing on the
 * CPU can come between the read and the write) until it is done
 * (ti_scratch_get, ti_scratch_put).  A segment that finds every slot of its
 * CPU taken is counted in `busy` and not inspected (doc/reference.md).
 * Debian's 6.1 and 6.12 RT kernels still serialize softirqs per CPU (the BH
 * lock): spec/32 checks whole records there under load from several CPUs.
 *
 * TI_TEST_CLOBBER (make clobber-check only, never a real build): one scratch
 * for all CPUs, no claim, and a delay before the record is copied out
 * (TI_EMIT), so concurrent segments overwrite each other's: spec/32 must
 * fail with it. */
#define TI_SCRATCH_SLOTS 4

struct {
#ifdef TI_TEST_CLOBBER
	__uint(type, BPF_MAP_TYPE_ARRAY);
#else
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
#endif
	__uint(max_entries, TI_SCRATCH_SLOTS);
	__type(key, __u32);
	__type(value, struct ti_scratch);
} scratch SEC(".maps");

/* ---- filter expressions: classic BPF from libpcap (bpf/ti_cbpf.h) ----------- */

/* One instruction per iteration of bpf_loop: the verifier checks this
 * callback once, whatever the program, and the program can change at run
 * time (it is in the filter slot, written by set_filter).  Jumps go
 * forward only, so len iterations are enough for any path to reach its
 * RET; the state lives in the scratch, and ctx is the index of the hook's
 * scratch slot (a scalar on the caller's stack, no pointer). */
static long ti_cbpf_cb(__u32 i, void *ctx)
{
	__u64 k = *(__u64 *)ctx; /* the hook's scratch slot */
	struct ti_scratch *x = bpf_map_lookup_elem(&scratch, &k);
	const struct ti_cbpf_prog *p;
	__u64 pc;

	if (!x)
		return 1;
	p = &ti_cfg[x->cfg_slot & 1].expr;
	pc = x->cbpf.pc;
	if (pc >= p->len) {
		x->cbpf.ret = 0;
		return 1;
	}
	return ti_cbpf_step(&x->cbpf, &p->insns[pc & (TI_CBPF_MAX_INSNS - 1)], x->pkt, x->buflen, x->ev.wirelen);
}

/* The expression's verdict on the bytes in x->pkt: nonzero accepts. */
static __always_inline int ti_expr_match(struct ti_scratch *x, __u64 len)
{
	__u64 k = x->sslot; /* 64-bit on the stack: see ti_count */

	__builtin_memset(&x->cbpf, 0, sizeof(x->cbpf));
	if (len > TI_CBPF_MAX_INSNS)
		return 0;
	bpf_loop(len, ti_cbpf_cb, &k, 0);
	return x->cbpf.ret != 0;
}

/* fentry/kprobe: the bytes past the skb's linear data sit in its page
 * fragments (on lo, TCP's whole payload; drivers of real NICs put payload
 * there too).  A fragment is read through the kernel's direct map: its
 * page is vmemmap_base + pfn * sizeof(struct page), its bytes are at
 * page_offset_base + pfn * PAGE_SIZE + offset (x86-64, whose memory
 * layout KASLR moves: both bases are read from the kernel, from the
 * variables whose addresses user space found in /proc/kallsyms and set in
 * ti_load before load).  Where they are unknown (0: a kallsyms that hides
 * addresses), the copy stops at the linear data and caplen says so; the
 * verifier prunes it, the addresses being constants.  skb_frag_t is { page
 * (6.1: bv_page; 6.12: netmem, bit 0 set for memory that is not a page),
 * len, offset } in both kernel lines. */
#define TI_FRAGS_MAX 4 /* fragments read per segment: 4096 bytes fill in fewer */
#define TI_PAGE_SIZE 4096

struct ti_frag {
	__u64 page;
	__u32 len;
	__u32 offset;
};

/* Append up to n - done bytes from skb's fragments to x->pkt[done...];
 * returns the new done. */
static __always_inline __u64 ti_copy_frags(struct ti_scratch *x, struct sk_buff *skb, unsigned char *head, __u64 done,
					   __u64 n)
{
	void *sh = head + BPF_CORE_READ(skb, end);
	__u64 frags = bpf_core_field_offset(struct skb_shared_info, frags);
	__u64 fsize = bpf_core_type_size(skb_frag_t), psize = bpf_core_type_size(struct page);
	__u64 pob = 0, vmb = 0, k, src;
	struct ti_frag f;
	__u8 nr = 0;

	if (done >= n || !ti_load.page_offset_base || !ti_load.vmemmap_base || !psize ||
	    bpf_probe_read_kernel(&pob, sizeof(pob), (void *)ti_load.page_offset_base) ||
	    bpf_probe_read_kernel(&vmb, sizeof(vmb), (void *)ti_load.vmemmap_base) ||
	    bpf_probe_read_kernel(&nr, sizeof(nr), sh + bpf_core_field_offset(struct skb_shared_info, nr_frags)))
		return done;
	TI_UNROLL
	for (int i = 0; i < TI_FRAGS_MAX; i++) {
		if (i >= nr || done >= n)
			break;
		if (bpf_probe_read_kernel(&f, sizeof(f), sh + frags + i * fsize) || (f.page & 1) || f.page < vmb ||
		    !f.len)
			break;
		k = f.len < n - done ? f.len : n - done;
		src = pob + (f.page - vmb) / psize * TI_PAGE_SIZE + f.offset;
		/* done < n <= TI_PKT_MAX and 1 <= k <= TI_PKT_MAX: inside pkt's 2 * TI_PKT_MAX */
		ti_barrier_var(done);
		ti_barrier_var(k);
		if (bpf_probe_read_kernel(x->pkt + (done & (TI_PKT_MAX - 1)), ((k - 1) & (TI_PKT_MAX - 1)) + 1,
					  (void *)src))
			break;
		done += k;
	}
	return done;
}

/* fentry/kprobe: the segment's bytes, from its IP header (head + nh): the
 * skb's linear data (lin bytes from there), then its page fragments.  No
 * bound but the segment's length is passed on: the fragments' own lengths
 * end the copy, and a segment that asks for no bytes costs no read here. */
static __always_inline void ti_copy_kernel(struct ti_scratch *x, struct sk_buff *skb, unsigned char *head, __u64 nh,
					   __u64 lin)
{
	__u64 slot = ti_cfg_slot & 1;
	__u64 n = ti_bounded(ti_bytes_wanted(x, &ti_cfg[slot], slot, ~0ULL), TI_PKT_MAX);
	__u64 m = n < lin ? n : lin;

	if (m && bpf_probe_read_kernel(x->pkt, ti_size_arg(m), head + nh))
		n = m = 0;
	if (n > m)
		m = ti_copy_frags(x, skb, head, m, n);
	ti_bytes_copied(x, m);
}

/* tc/cgroup: with bpf_skb_load_bytes from off (the IP header). */
static __always_inline void ti_copy_sk_buff(struct ti_scratch *x, struct __sk_buff *skb, __u64 off)
{
	__u64 slot = ti_cfg_slot & 1;
	__u64 n = ti_bounded(ti_bytes_wanted(x, &ti_cfg[slot], slot, skb->len > off ? skb->len - off : 0), TI_PKT_MAX);

	if (n && bpf_skb_load_bytes(skb, off, x->pkt, ti_size_arg(n)))
		n = 0;
	ti_bytes_copied(x, n);
}

/* ---- emit ----------------------------------------------------------------- */

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
	if (bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) + TI_RING_SPACE(len) >= ti_load.wakeup_bytes) {
		cons = bpf_ringbuf_query(&events, BPF_RB_CONS_POS) + 1;
		if (cons != ti_woken_cons) {
			ti_woken_cons = cons;
			flags = BPF_RB_FORCE_WAKEUP;
		}
	}
	ti_count_emit(e, !bpf_ringbuf_output(&events, (void *)e, len, flags));
}

static __always_inline void ti_emit(const struct ti_event *e)
{
	struct ti_event *r;
	__u64 flags = BPF_RB_NO_WAKEUP, cons;

	if (ti_load.snaplen) {
		ti_emit_bytes(e);
		return;
	}

	/* no bytes, no socket fields, not a drop: the compact record
	 * (TI_EVENT_COMPACT, bpf/tcpinspect.h), a quarter less ring */
	if (!ti_load.sockets && e->probe != TI_PROBE_KFREE_SKB) {
		r = bpf_ringbuf_reserve(&events, TI_EVENT_COMPACT, 0);
		if (!r) {
			ti_count_emit(e, 0);
			return;
		}
		__builtin_memcpy(r, e, TI_EVENT_COMPACT);
	} else {
		r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
		if (!r) {
			ti_count_emit(e, 0);
			return;
		}
		__builtin_memcpy(r, e, sizeof(*r));
	}
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
	ti_count_emit(e, 1);
}

/* A connection ended on the path (a RST): its record, the segment's event
 * (the key's addresses, ports, family, netns) as probe TI_PROBE_CONN with
 * the struct ti_conn as its caplen bytes.  A full ring: conns_lost. */
static __always_inline void ti_conn_emit(struct ti_scratch *x)
{
	struct ti_event *r = bpf_ringbuf_reserve(&events, sizeof(*r) + sizeof(struct ti_conn), 0);

	if (!r) {
		ti_count(TI_STAT_CONNS_LOST);
		return;
	}
	__builtin_memcpy(r, &x->ev, sizeof(*r));
	r->probe = TI_PROBE_CONN;
	r->caplen = sizeof(struct ti_conn);
	__builtin_memcpy((__u8 *)(r + 1), &x->cv, sizeof(struct ti_conn));
	bpf_ringbuf_submit(r, 0);
}

/* ---- the one path every hook takes ---------------------------------------- */

/* A global (non-inlined) function: the verifier checks it once, on its
 * own, instead of once per hook and per path into it.  This keeps the
 * programs verifiable without CAP_PERFMON, where speculative-execution
 * checks multiply the states explored.  The hook has parsed the segment
 * into the scratch slot it owns (ev); it is looked up again here rather
 * than passed, so that the verifier knows it as a map value (a key for
 * maps). */
__attribute__((noinline)) int ti_handle(__u64 sslot)
{
	struct ti_scratch *x = bpf_map_lookup_elem(&scratch, &sslot);
	__u32 slot;

	if (!x)
		return 0;
	slot = x->cfg_slot & 1; /* the filter slot the hook copied the bytes for */
	ti_path(x, &ti_cfg[slot], slot);
	return 0;
}

/* The drop hook's path (ti_drop_path), a global function as ti_handle is. */
__attribute__((noinline)) int ti_handle_drop(__u64 sslot)
{
	struct ti_scratch *x = bpf_map_lookup_elem(&scratch, &sslot);
	__u32 slot;

	if (!x)
		return 0;
	slot = x->cfg_slot & 1;
	ti_drop_path(x, &ti_cfg[slot], slot);
	return 0;
}

/* Claim scratch slot k of this CPU: one atomic exchange, so nothing that
 * runs on this CPU in between can claim it too. */
static __always_inline struct ti_scratch *ti_scratch_try(__u64 k)
{
	struct ti_scratch *x = bpf_map_lookup_elem(&scratch, &k);

#ifdef TI_TEST_CLOBBER
	if (x && k == 0) {
#else
	if (x && __sync_lock_test_and_set(&x->busy, 1) == 0) {
#endif
		x->sslot = k;
		return x;
	}
	return 0;
}

/* A free scratch slot of this CPU, cleared for a new segment, or NULL
 * (counted in `busy`).  Give it back with ti_scratch_put.  Only the event
 * is cleared: every hook fills the walk's headers (ip, th) before it reads
 * them, and ti_parse reads ip only as far as the hook loaded it (IPv4: 20
 * bytes).  The time and the CPU only where something takes them: the
 * records (events, a conn-end, a drop's), the flows' and drops' first
 * and last times (their TI_AGG_* bits), the connections. */
static __always_inline struct ti_scratch *ti_scratch_get(__u8 probe)
{
	struct ti_scratch *x = ti_scratch_try(0);

	if (!x)
		x = ti_scratch_try(1);
	if (!x)
		x = ti_scratch_try(2);
	if (!x)
		x = ti_scratch_try(3);
	if (!x) {
		ti_count(TI_STAT_BUSY);
		return 0;
	}
	__builtin_memset(&x->ev, 0, sizeof(x->ev));
	x->ev.probe = probe;
	if (ti_load.events || (ti_load.aggregates & (TI_AGG_FLOWS | TI_AGG_DROPS)) || ti_load.conns ||
	    probe == TI_PROBE_KFREE_SKB)
		x->ev.ts = bpf_ktime_get_ns();
	if (ti_load.events || ti_load.conns)
		x->ev.cpu = bpf_get_smp_processor_id();
	return x;
}

static __always_inline void ti_scratch_put(struct ti_scratch *x)
{
	/* every use of the slot comes before the release: a compiler barrier
	 * is enough, the slot is only shared with this CPU */
	asm volatile("" ::: "memory");
	x->busy = 0;
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
		    !bpf_probe_read_kernel(&anc, sizeof(anc),
					   (void *)cg + bpf_core_field_offset(struct cgroup, ancestors) +
						   ti_load.cgroup_level * sizeof(anc)))
			*in_scope = BPF_CORE_READ(anc, kn, id) == ti_load.cgroup_id;
	}
	return BPF_CORE_READ(cg, kn, id);
}

/* ---- the receiving socket (sockets = true) ---------------------------------- */

#define TCP_SYN_RECV_ 3
#define TCP_LISTEN_ 10
#define TI_CURRENT_NETNS ((__u64)-1) /* BPF_F_CURRENT_NETNS */

/* The fields of the socket sk (a kernel pointer: a full, request or
 * time-wait socket; NULL: none) into e, read with probe reads, so that
 * every hook that has the pointer (tc's lookup, cgroup's skb->sk, early
 * demux's skb->sk at tcp_v4_rcv, the drop tracepoint's rx_sk) fills them
 * alike.  A request socket is reported as SYN_RECV with its listener's
 * owner (uid, inode); a time-wait socket has no owner.  TI_SK_FULLQ: the
 * owning listener's accept queue is full (sk_acceptq_is_full), so a SYN
 * or a handshake's last ACK to it is refused (ListenDrops). */
static __always_inline void ti_sock_fill(struct ti_event *e, struct sock *sk)
{
	struct sock *owner = sk;
	__u64 state;

	if (!sk)
		return;
	state = BPF_CORE_READ(sk, __sk_common.skc_state);
	e->sk_cookie = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
	if (state == TCP_TIME_WAIT_) {
		e->sk_state = state;
		return;
	}
	if (state == TCP_NEW_SYN_RECV_) {
		owner = BPF_CORE_READ(sk, __sk_common.skc_listener);
		e->sk_flags = TI_SK_LISTENER;
		state = TCP_SYN_RECV_;
	}
	e->sk_state = state;
	if (!owner)
		return;
	e->uid = BPF_CORE_READ(owner, sk_uid.val);
	e->sk_flags |= TI_SK_UID;
	e->sk_ino = BPF_CORE_READ(owner, sk_socket, file, f_inode, i_ino);
	if ((state == TCP_LISTEN_ || state == TCP_SYN_RECV_) &&
	    BPF_CORE_READ(owner, sk_ack_backlog) > BPF_CORE_READ(owner, sk_max_ack_backlog))
		e->sk_flags |= TI_SK_FULLQ;
}

/* The skb's bytes from the network header on, for a segment whose IP
 * header carries no length (ti_parse: BIG TCP's IPv4 total length 0, or an
 * IPv6 jumbogram, which ipv6_hop_jumbo has trimmed the skb to); read only
 * then: 0 for every other segment.  At tcp_v{4,6}_rcv skb->data is at the
 * transport header, so skb->len alone is short of the IP headers. */
static __always_inline __u64 ti_kernel_skb_len(struct sk_buff *skb, unsigned char *head, __u64 nh,
					       const struct ti_scratch *x)
{
	if ((x->w.ip[0] >> 4) == 4 ? x->w.ip[2] | x->w.ip[3] : x->w.ip[4] | x->w.ip[5])
		return 0;
	return BPF_CORE_READ(skb, len) + ((unsigned char *)BPF_CORE_READ(skb, data) - head) - nh;
}

static __always_inline void ti_sock_flush(void);

static __always_inline int ti_from_kernel_skb(struct sk_buff *skb, __u8 probe)
{
	struct ti_scratch *x;
	unsigned char *head = BPF_CORE_READ(skb, head);
	__u16 nh = BPF_CORE_READ(skb, network_header);
	__u16 tp = BPF_CORE_READ(skb, transport_header);
	__u64 netns = BPF_CORE_READ(skb, dev, nd_net.net, ns.inum), cgroup, in_scope;

	/* a segment of this task still waiting for its socket is from a run
	 * whose return was not seen (a kretprobe can miss): finish it now */
	if (ti_load.sockets)
		ti_sock_flush();
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
	/* the socket, where early demux found it (doc/modes.md) */
	if (ti_load.sockets)
		ti_sock_fill(&x->ev, BPF_CORE_READ(skb, sk));
	if (bpf_probe_read_kernel(x->w.ip, sizeof(x->w.ip), head + nh) ||
	    bpf_probe_read_kernel(&x->w.th, sizeof(x->w.th), head + tp) ||
	    ti_parse(&x->ev, x->w.ip, (__u16)(tp - nh), &x->w.th, ti_kernel_skb_len(skb, head, nh, x)))
		ti_count(TI_STAT_ERRORS);
	else {
		ti_copy_kernel(x, skb, head, nh, (__u32)(BPF_CORE_READ(skb, tail) - nh));
		if (ti_load.sockets && !x->ev.sk_state) {
			/* no socket yet: the slot stays claimed until the
			 * socket-side hook names it, or tcp_v{4,6}_rcv returns
			 * without one (ti_sock_side, ti_sock_flush) */
			x->skb = (__u64)skb;
			x->task = bpf_get_current_task();
			return 0;
		}
		ti_handle(x->sslot);
	}
	ti_scratch_put(x);
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

/* How an __sk_buff hook finds the receiving socket (a compile-time
 * constant per program: the other ways are not in its code). */
enum ti_sk_how {
	TI_SK_NONE,   /* sockets off: the programs that load without CAP_PERFMON */
	TI_SK_LOOKUP, /* tc: the socket the kernel will find, looked up */
	TI_SK_SKB,    /* cgroup: skb->sk, the socket taking the segment */
};

/* A listen overflow (TI_SK_FULLQ) refuses a SYN without ACK (tcp_conn_request)
 * and a handshake's last ACK (tcp_check_req, or a SYN cookie's check):
 * either is consumed, not freed through kfree_skb (the SYN) or freed without
 * this reason, so with drops = true the receive hook that knows the
 * listener reports it, through the drop path, at either function's
 * address (ti_load's, from /proc/kallsyms: 0 where it hides them). */
static __always_inline int ti_listen_overflow(const struct ti_event *e)
{
	__u8 f = e->flags & (TI_SYN | TI_ACK | TI_RST | TI_FIN);

	return (e->sk_flags & TI_SK_FULLQ) && (f == TI_SYN || (f == TI_ACK && e->len == 0));
}

static __always_inline void ti_report_overflow(struct ti_scratch *x)
{
	x->ev.location = (__u32)((x->ev.flags & TI_SYN) ? ti_load.conn_request : ti_load.check_req);
	x->ev.probe = TI_PROBE_KFREE_SKB;
	x->ev.reason = ti_load.overflow_reason;
	ti_handle_drop(x->sslot);
}

/* tc: the socket the kernel's lookup will find for the segment in x->ev,
 * in the device's namespace: established, request or time-wait first,
 * then a listener.  bpf_skc_lookup_tcp takes a reference: released here. */
static __always_inline void ti_sock_lookup(struct __sk_buff *skb, struct ti_scratch *x)
{
	struct bpf_sock_tuple t = {};
	struct bpf_sock *s;
	struct sock *k = 0;
	__u32 size;

	if (x->ev.family == 4) {
		__builtin_memcpy(&t.ipv4.saddr, x->ev.saddr, 4);
		__builtin_memcpy(&t.ipv4.daddr, x->ev.daddr, 4);
		t.ipv4.sport = bpf_htons(x->ev.sport);
		t.ipv4.dport = bpf_htons(x->ev.dport);
		size = sizeof(t.ipv4);
	} else {
		__builtin_memcpy(t.ipv6.saddr, x->ev.saddr, 16);
		__builtin_memcpy(t.ipv6.daddr, x->ev.daddr, 16);
		t.ipv6.sport = bpf_htons(x->ev.sport);
		t.ipv6.dport = bpf_htons(x->ev.dport);
		size = sizeof(t.ipv6);
	}
	s = bpf_skc_lookup_tcp(skb, &t, size, TI_CURRENT_NETNS, 0);
	if (!s)
		return;
	k = (struct sock *)bpf_skc_to_tcp_sock(s);
	if (!k)
		k = (struct sock *)bpf_skc_to_tcp_request_sock(s);
	if (!k)
		k = (struct sock *)bpf_skc_to_tcp_timewait_sock(s);
	ti_sock_fill(&x->ev, k);
	bpf_sk_release(s);
}

/* cgroup: skb->sk is the full socket the segment is for (the listener for
 * a SYN and for a handshake's last ACK); its cookie through the helper,
 * which makes one if the socket has none yet. */
static __always_inline void ti_sock_skb(struct __sk_buff *skb, struct ti_scratch *x)
{
	struct bpf_sock *sk = skb->sk;

	if (!sk)
		return;
	ti_sock_fill(&x->ev, (struct sock *)bpf_skc_to_tcp_sock(sk));
	if (x->ev.sk_state)
		x->ev.sk_cookie = bpf_get_socket_cookie(skb);
}

static __always_inline void ti_from_sk_buff(struct __sk_buff *skb, __u64 off, __u8 probe, __u64 netns, __u64 cgroup,
					    enum ti_sk_how how)
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
	r = ti_frame_segment(skb, off, skb->len, skb->protocol == bpf_htons(ETH_P_IP), &x->ev, &x->w);
	if (r < 0)
		ti_count(TI_STAT_ERRORS);
	else if (r > 0) {
		if (how == TI_SK_LOOKUP)
			ti_sock_lookup(skb, x);
		else if (how == TI_SK_SKB)
			ti_sock_skb(skb, x);
		ti_copy_sk_buff(x, skb, off);
		ti_handle(x->sslot);
		if (how != TI_SK_NONE && ti_load.drops && ti_listen_overflow(&x->ev))
			ti_report_overflow(x);
	}
	ti_scratch_put(x);
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
	ti_from_sk_buff(skb, 0, TI_PROBE_CGROUP, 0, bpf_skb_cgroup_id(skb), TI_SK_NONE);
	return 1; /* allow: tcpinspect observes, it never drops */
}

/* ... and its netns (CAP_PERFMON), out of the scope's: not seen; how says
 * whether the record names the receiving socket too */
static __always_inline int ti_cgroup_in_netns(struct __sk_buff *skb, enum ti_sk_how how)
{
	__u64 netns = ti_skb_sock_netns(skb); /* 64-bit: see ti_count */

	if (ti_load.scope_netns && netns != ti_load.scope_netns)
		return 1;
	ti_from_sk_buff(skb, 0, TI_PROBE_CGROUP, netns, bpf_skb_cgroup_id(skb), how);
	return 1;
}

SEC("cgroup_skb/ingress")
int ti_cgroup_ingress_ns(struct __sk_buff *skb)
{
	return ti_cgroup_in_netns(skb, TI_SK_NONE);
}

/* ... and the receiving socket (sockets = true; CAP_PERFMON) */
SEC("cgroup_skb/ingress")
int ti_cgroup_ingress_sk(struct __sk_buff *skb)
{
	return ti_cgroup_in_netns(skb, TI_SK_SKB);
}

SEC("tc")
int ti_tc_ingress(struct __sk_buff *skb)
{
	/* Only frames addressed to this host, as tcp_v4_rcv would see them,
	 * and only where the IP stack receives them: a frame whose VLAN tag
	 * the device took off (vlan_present) goes on to the VLAN device, and
	 * is counted there (doc/modes.md, "Stacked devices"). */
	if (skb->pkt_type == PACKET_HOST_ && !skb->vlan_present)
		ti_from_sk_buff(skb, ETH_HLEN, TI_PROBE_TC, ti_load.netns, 0, TI_SK_NONE);
	return -1; /* TC_ACT_UNSPEC: continue as if we were not here */
}

/* tc attached in every network namespace (no scope): each segment with its
 * device's namespace.  tc cannot read it through __sk_buff, so it is read
 * from the kernel's sk_buff behind the context (the context pointer is
 * that sk_buff): bpf_probe_read_kernel, which needs CAP_PERFMON, so it is
 * a program of its own, as ti_cgroup_ingress_ns is. */
SEC("tc")
int ti_tc_ingress_ns(struct __sk_buff *skb)
{
	struct sk_buff *kskb = (struct sk_buff *)skb;

	if (skb->pkt_type == PACKET_HOST_ && !skb->vlan_present)
		ti_from_sk_buff(skb, ETH_HLEN, TI_PROBE_TC, BPF_CORE_READ(kskb, dev, nd_net.net, ns.inum), 0,
				TI_SK_NONE);
	return -1;
}

/* ... and the receiving socket (sockets = true; CAP_PERFMON): each
 * segment with its device's namespace, as ti_tc_ingress_ns, in which the
 * socket is looked up */
SEC("tc")
int ti_tc_ingress_sk(struct __sk_buff *skb)
{
	struct sk_buff *kskb = (struct sk_buff *)skb;

	if (skb->pkt_type == PACKET_HOST_ && !skb->vlan_present)
		ti_from_sk_buff(skb, ETH_HLEN, TI_PROBE_TC, BPF_CORE_READ(kskb, dev, nd_net.net, ns.inum), 0,
				TI_SK_LOOKUP);
	return -1;
}

/* ---- entry: drops (skb:kfree_skb) --------------------------------------------- */

#define TI_IP_MF_OFFSET 0x3fff /* IPv4 frag_off: more fragments, or an offset */
#define TI_TH_UNSET 0xffff     /* skb->transport_header not set */

/* A field of the sk_buff (or a chain from it): read directly where the
 * program is typed (tp_btf: a load the verifier checks against BTF, a
 * fault reads 0), through bpf_probe_read_kernel where it is not (raw_tp:
 * an untyped word).  typed is a constant of the always-inlined caller, so
 * each program has one of the two; a direct load is a few instructions, a
 * probe read a helper call (the drop hook runs for every freed skb). */
#define TI_SKB_READ(typed, direct, ...) ((typed) ? (direct) : BPF_CORE_READ(__VA_ARGS__))

/* A TCP segment this host received, freed with a reason (the tracepoint
 * fires for every skb the kernel drops: sent ones too, and other
 * protocols').  What makes it one of ours, read before a scratch slot is
 * claimed:
 *   - it came in through the receive path: __netif_receive_skb_core sets
 *     skb->skb_iif to the receiving device, and an skb built here (a TCP
 *     segment being sent, a clone of one, a reset or an ACK we answer
 *     with) has 0 there (alloc_skb zeroes it, clones copy it).  On lo a
 *     sent segment becomes a received one at loopback_xmit -> netif_rx,
 *     and is seen from then on, as the receive hooks see it;
 *   - addressed to this host (pkt_type PACKET_HOST, as tc mode takes it):
 *     not a frame picked up for another host or a broadcast;
 *   - IPv4 or IPv6 carrying TCP right after the IP header (an IPv6 segment
 *     behind extension headers is not reported), not an IPv4 fragment.
 * The TCP header follows the IP header: IPv4's ihl, IPv6's 40 bytes
 * (transport_header is not set yet for drops before ip_rcv).
 * The scope is the session's (drop_netns, and cgroup_id for a drop whose
 * skb has a socket), then the path is ti_drop_path: the filter, the
 * reason counted, the record. */
static __always_inline int ti_from_dropped_skb(struct sk_buff *skb, __u64 location, __u64 reason, struct sock *rx_sk,
					       const int typed)
{
	struct ti_scratch *x;
	unsigned char *head;
	__u64 proto = TI_SKB_READ(typed, skb->protocol, skb, protocol), nh, tp, netns, cgroup, in_scope, iif;
	__u8 ip[10];

	if (proto != bpf_htons(ETH_P_IP) && proto != bpf_htons(ETH_P_IPV6))
		return 0;
	iif = TI_SKB_READ(typed, skb->skb_iif, skb, skb_iif);
	if (!iif || (typed ? BPF_CORE_READ_BITFIELD(skb, pkt_type) : BPF_CORE_READ_BITFIELD_PROBED(skb, pkt_type)) !=
			    PACKET_HOST_)
		return 0;
	/* TCP clears skb->dev once a socket has the segment (a drop in the
	 * sequence checks has none): the netns is then the receiving
	 * socket's, where the tracepoint names it (rx_sk, 6.11+) */
	netns = TI_SKB_READ(typed, skb->dev->nd_net.net->ns.inum, skb, dev, nd_net.net, ns.inum);
	if (!netns && rx_sk)
		netns = TI_SKB_READ(typed, rx_sk->__sk_common.skc_net.net->ns.inum, rx_sk, __sk_common.skc_net.net,
				    ns.inum);
	if (ti_load.drop_netns && netns != ti_load.drop_netns)
		return 0;
	/* probe-read in both: a direct load would make head a pointer the
	 * verifier will not let the reads below take as an address */
	head = BPF_CORE_READ(skb, head);
	nh = TI_SKB_READ(typed, skb->network_header, skb, network_header);
	if (nh == TI_TH_UNSET || bpf_probe_read_kernel(ip, sizeof(ip), head + nh))
		return 0;
	if (proto == bpf_htons(ETH_P_IP)) {
		if ((ip[0] >> 4) != 4 || ip[9] != TI_IPPROTO_TCP || (((ip[6] << 8) | ip[7]) & TI_IP_MF_OFFSET))
			return 0;
		tp = nh + (ip[0] & 15) * 4;
	} else {
		if ((ip[0] >> 4) != 6 || ip[6] != TI_IPPROTO_TCP)
			return 0;
		tp = nh + 40;
	}
	/* no socket (a segment no socket took): no cgroup, and no probe read to learn it */
	in_scope = 0;
	cgroup = typed && !skb->sk ? 0 : ti_sock_cgroup(skb, &in_scope);
	if (ti_load.cgroup_id && !in_scope)
		return 0;
	x = ti_scratch_get(TI_PROBE_KFREE_SKB);
	if (!x)
		return 0;
	x->ev.ifindex = iif; /* the receiving device's, dev or not */
	x->ev.netns = netns;
	x->ev.cgroup = cgroup;
	x->ev.reason = reason;
	x->ev.location = location;
	if (ti_load.sockets)
		ti_sock_fill(&x->ev, rx_sk);
	if (bpf_probe_read_kernel(x->w.ip, sizeof(x->w.ip), head + nh) ||
	    bpf_probe_read_kernel(&x->w.th, sizeof(x->w.th), head + tp) ||
	    ti_parse(&x->ev, x->w.ip, (__u16)(tp - nh), &x->w.th, ti_kernel_skb_len(skb, head, nh, x)))
		ti_drop_count(TI_DROP_REASON_SLOTS + TI_DROP_ERRORS); /* unreadable: not in seen */
	else {
		ti_copy_kernel(x, skb, head, nh, (__u32)(TI_SKB_READ(typed, skb->tail, skb, tail) - nh));
		ti_handle_drop(x->sslot);
	}
	ti_scratch_put(x);
	return 0;
}

/* skb:kfree_skb as a BTF tracepoint: (skb, location, reason) in 6.1, and
 * rx_sk after them from 6.11 (not read here).  Loaded only with drops =
 * true (luaext/kernel.c, select_drops), where the kernel has no rx_sk. */
SEC("tp_btf/kfree_skb")
int BPF_PROG(ti_drop_btf, struct sk_buff *skb, void *location, int reason)
{
	return ti_from_dropped_skb(skb, (__u64)location, (__u32)reason, 0, 1);
}

/* ... from 6.11, with the receiving socket the tracepoint names (rx_sk):
 * the netns of a drop after TCP took the segment, and the socket fields
 * with sockets = true; loaded instead of ti_drop_btf where the kernel's
 * tracepoint has rx_sk (luaext/kernel.c) */
SEC("tp_btf/kfree_skb")
int BPF_PROG(ti_drop_btf_sk, struct sk_buff *skb, void *location, int reason, struct sock *rx_sk)
{
	return ti_from_dropped_skb(skb, (__u64)location, (__u32)reason, rx_sk, 1);
}

/* The same tracepoint without BTF typing, where the kernel refuses tp_btf
 * (a tracing program) but takes a raw tracepoint: the same arguments, as
 * untyped words, and skb read through bpf_probe_read_kernel as above
 * (BPF_CORE_READ).  Not the classic tracepoint: that one attaches through
 * its id in tracefs, which is not mounted everywhere (this development
 * host), while a raw tracepoint attaches by name. */
SEC("raw_tp/kfree_skb")
int BPF_PROG(ti_drop_raw, struct sk_buff *skb, void *location, int reason)
{
	return ti_from_dropped_skb(skb, (__u64)location, (__u32)reason, 0, 0);
}

/* ---- the socket side of fentry/kprobe (sockets = true) ------------------------ */

/* At tcp_v{4,6}_rcv's entry the kernel has not looked the socket up yet
 * (only early demux may have: an established one, in skb->sk).  A segment
 * without one waits in its claimed scratch slot, parsed, for the one
 * socket-side hook: sk_filter_trim_cap(sk, skb), which tcp_filter calls
 * once the kernel has found the socket that takes the segment -- the full
 * socket, or for a request socket its listener, as the cgroup_skb program
 * (which the kernel runs from that very function) sees it.  A segment that
 * reaches no socket (none listens, a time-wait socket, a bad checksum)
 * goes its way without one when tcp_v{4,6}_rcv returns (fexit, kretprobe).
 * Either way it takes the one path, once. */
static __always_inline void ti_sock_complete(__u64 k, struct sock *sk)
{
	struct ti_scratch *x = bpf_map_lookup_elem(&scratch, &k);

	if (!x)
		return;
	x->skb = 0;
	ti_sock_fill(&x->ev, sk);
	ti_handle(x->sslot);
	if (ti_load.drops && ti_listen_overflow(&x->ev))
		ti_report_overflow(x);
	ti_scratch_put(x);
}

/* Slot k of this CPU waits for skb (nonzero), or holds task's waiting
 * segment (skb 0). */
static __always_inline int ti_sock_is(__u64 k, __u64 skb, __u64 task)
{
	struct ti_scratch *x = bpf_map_lookup_elem(&scratch, &k);

	return x && x->busy && x->skb && (skb ? x->skb == skb : x->task == task);
}

/* The slot of this CPU waiting for skb (or task's), or TI_SCRATCH_SLOTS:
 * straight code, as ti_scratch_get's claim. */
static __always_inline __u64 ti_sock_waiting(__u64 skb, __u64 task)
{
	if (ti_sock_is(0, skb, task))
		return 0;
	if (ti_sock_is(1, skb, task))
		return 1;
	if (ti_sock_is(2, skb, task))
		return 2;
	if (ti_sock_is(3, skb, task))
		return 3;
	return TI_SCRATCH_SLOTS;
}

static __always_inline int ti_sock_side(struct sock *sk, struct sk_buff *skb)
{
	__u64 k = ti_sock_waiting((__u64)skb, 0);

	if (k < TI_SCRATCH_SLOTS)
		ti_sock_complete(k, sk);
	return 0;
}

/* tcp_v{4,6}_rcv returned: this task's waiting segment reached no socket */
static __always_inline void ti_sock_flush(void)
{
	__u64 k = ti_sock_waiting(0, bpf_get_current_task());

	if (k < TI_SCRATCH_SLOTS)
		ti_sock_complete(k, 0);
}

SEC("fentry/sk_filter_trim_cap")
int BPF_PROG(ti_fentry_sock, struct sock *sk, struct sk_buff *skb)
{
	return ti_sock_side(sk, skb);
}

SEC("kprobe/sk_filter_trim_cap")
int BPF_KPROBE(ti_kprobe_sock, struct sock *sk, struct sk_buff *skb)
{
	return ti_sock_side(sk, skb);
}

SEC("fexit/tcp_v4_rcv")
int BPF_PROG(ti_fexit_v4, struct sk_buff *skb, int ret)
{
	ti_sock_flush();
	return 0;
}

SEC("fexit/tcp_v6_rcv")
int BPF_PROG(ti_fexit_v6, struct sk_buff *skb, int ret)
{
	ti_sock_flush();
	return 0;
}

SEC("kretprobe/tcp_v4_rcv")
int BPF_KRETPROBE(ti_kretprobe_v4)
{
	ti_sock_flush();
	return 0;
}

SEC("kretprobe/tcp_v6_rcv")
int BPF_KRETPROBE(ti_kretprobe_v6)
{
	ti_sock_flush();
	return 0;
}
