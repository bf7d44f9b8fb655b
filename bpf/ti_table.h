/* ti_table.h: the in-kernel aggregate tables' layout and hash, plain C
 * compiled for both targets: the BPF program places entries with it, and
 * user space (luaext/kernel_maps.c) finds them with the very same code.
 *
 * "flows" and "sources" are per-CPU, set-associative tables: a per-CPU
 * array of buckets, TI_TABLE_WAYS entries each.  A key lives in bucket
 * ti_table_hash(key) % buckets of the CPU that saw the segment; a new key
 * takes a free entry of its bucket, or replaces the entry with the fewest
 * packets (counted in stats as evicted_flows / evicted_sources).  No
 * insert, no lock, no atomic: the cost per segment is the same for a new
 * flow as for a known one, which is what a new-flow flood needs.  User
 * space merges the CPUs' entries of a key (sums, min first_ts, max last_ts).
 */
#ifndef TI_TABLE_H
#define TI_TABLE_H

#include "tcpinspect.h"

#define TI_TABLE_WAYS 4

struct ti_flow_entry {
	struct ti_flow_key key;
	struct ti_flow_val val; /* val.packets == 0: a free entry */
};

struct ti_flow_bucket {
	struct ti_flow_entry e[TI_TABLE_WAYS];
};

struct ti_source_entry {
	struct ti_addr_key key;
	struct ti_source_val val;
};

struct ti_source_bucket {
	struct ti_source_entry e[TI_TABLE_WAYS];
};

/* A 32-bit hash of n 32-bit words (a key's bytes; keys are multiples of 4
 * bytes with zeroed padding).  Multiply-xorshift per word, then a final
 * avalanche (murmur3's fmix32): cheap in BPF, spreads sequential ports. */
static inline __u32 ti_table_hash(const __u32 *w, int n)
{
	__u32 h = 0x9e3779b9u;

#ifdef __bpf__
#pragma unroll
#endif
	for (int i = 0; i < n; i++) {
		h ^= w[i];
		h *= 0x85ebca6bu;
		h ^= h >> 13;
	}
	h ^= h >> 16;
	h *= 0xc2b2ae35u;
	h ^= h >> 16;
	return h;
}

#define TI_FLOW_KEY_WORDS (sizeof(struct ti_flow_key) / 4)
#define TI_ADDR_KEY_WORDS (sizeof(struct ti_addr_key) / 4)

/* Buckets for max entries: a power of two, at least one. */
static inline __u32 ti_table_buckets(__u32 max_entries)
{
	__u32 b = 1;

	while (b * TI_TABLE_WAYS < max_entries && b < (1u << 24))
		b <<= 1;
	return b;
}

#endif /* TI_TABLE_H */
