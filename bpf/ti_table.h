/* SPDX-License-Identifier: GPL-2.0-only */
/* ti_table.h: the in-kernel aggregate tables' layout and hash, plain C
 * compiled for both targets: the BPF program places entries with it, and
 * user space (luaext/kernel_maps.c) finds them with the very same code.
 *
 * "flows", "sources" and "drops" are per-CPU, set-associative tables: a per-CPU
 * array of entries, in buckets of TI_TABLE_WAYS consecutive entries.  A key
 * lives in bucket hash(key) % buckets of the CPU that saw the segment (its
 * entries bucket * TI_TABLE_WAYS + 0..3); a new key
 * takes a free entry of its bucket, or replaces the entry with the fewest
 * packets (counted in stats as evicted_flows / evicted_sources /
 * evicted_drops).  No
 * insert, no lock, no atomic: the cost per segment is the same for a new
 * flow as for a known one, which is what a new-flow flood needs.  User
 * space merges the CPUs' entries of a key (sums, min first_ts, max last_ts).
 *
 * Each table has a summary beside it ("flows_sum", "sources_sum",
 * "drops_sum"): a per-CPU array of struct ti_table_sum indexed by bucket,
 * which holds per way the 32-bit hash of the entry's key and its packets
 * (0: free).  A segment reads its bucket's summary (32 bytes) and then only
 * the entry whose hash matches its key's (the key compared in full there:
 * a hash collision is a miss, nothing else), or, for a new key, only the
 * entry it takes, chosen from the summary alone; the 4 entries of a bucket
 * (80 to 88 bytes each) are no longer all read.  The placement and the
 * eviction are those of a scan of the entries: the summary's packets are
 * the entry's (saturated at 2^32 - 1).  The entries stay what user space
 * reads; a delete or clear from user space updates the summary too
 * (luaext/kernel_maps.c), so that it stays the entries' mirror.
 */
#ifndef TI_TABLE_H
#define TI_TABLE_H

#include "tcpinspect.h"

#define TI_TABLE_WAYS 4

struct ti_flow_entry {
	struct ti_flow_key key;
	struct ti_flow_val val; /* val.packets == 0: a free entry */
};

struct ti_source_entry {
	struct ti_addr_key key;
	struct ti_source_val val;
};

struct ti_drop_entry {
	struct ti_drop_key key;
	struct ti_drop_val val;
};

/* A bucket's summary (above): way w holds the hash of entry w's key (its
 * tag) and its packets, saturated (ti_sum_packets); packets[w] == 0: entry
 * w is free.  32 bytes: half a cache line. */
struct ti_table_sum {
	__u32 tag[TI_TABLE_WAYS];
	__u32 packets[TI_TABLE_WAYS];
};

static inline __u32 ti_sum_packets(__u64 packets)
{
	return packets < 0xffffffffULL ? (__u32)packets : 0xffffffffu;
}

/* Keys are read as words through these types: may_alias, so that a
 * compiler with strict aliasing (gcc -O2, user space) does not move the
 * reads before the byte and 16-bit stores that built the key in the same
 * function (the pcap replay builds and hashes keys in one inlined path). */
typedef __u32 __attribute__((may_alias)) ti_word32;
typedef __u64 __attribute__((may_alias)) ti_word64;

/* The 32-bit hash of a key: multiply-xorshift per 32-bit word, then a final
 * avalanche (murmur3's fmix32).  Written out word by word, without a loop:
 * the verifier refuses a variable offset into a map value from a loop
 * without CAP_PERFMON, and loop-free code is the same in both targets. */
#define TI_HASH_STEP(h, x) ((h) ^= (x), (h) *= 0x85ebca6bu, (h) ^= (h) >> 13)

static inline __u32 ti_hash_final(__u32 h)
{
	h ^= h >> 16;
	h *= 0xc2b2ae35u;
	h ^= h >> 16;
	return h;
}

static inline __u32 ti_flow_hash(const struct ti_flow_key *k)
{
	const ti_word32 *w = (const ti_word32 *)k; /* 10 words */
	__u32 h = 0x9e3779b9u;

	TI_HASH_STEP(h, w[0]), TI_HASH_STEP(h, w[1]), TI_HASH_STEP(h, w[2]);
	TI_HASH_STEP(h, w[3]), TI_HASH_STEP(h, w[4]), TI_HASH_STEP(h, w[5]);
	TI_HASH_STEP(h, w[6]), TI_HASH_STEP(h, w[7]), TI_HASH_STEP(h, w[8]);
	TI_HASH_STEP(h, w[9]);
	return ti_hash_final(h);
}

/* a 24-byte key: ti_addr_key, ti_drop_key */
static inline __u32 ti_hash24(const void *k)
{
	const ti_word32 *w = (const ti_word32 *)k; /* 6 words */
	__u32 h = 0x9e3779b9u;

	TI_HASH_STEP(h, w[0]), TI_HASH_STEP(h, w[1]), TI_HASH_STEP(h, w[2]);
	TI_HASH_STEP(h, w[3]), TI_HASH_STEP(h, w[4]), TI_HASH_STEP(h, w[5]);
	return ti_hash_final(h);
}

static inline __u32 ti_addr_hash(const struct ti_addr_key *k)
{
	return ti_hash24(k);
}

static inline __u32 ti_drop_hash(const struct ti_drop_key *k)
{
	return ti_hash24(k);
}

/* Keys are equal: compared as 64-bit words, written out (see above). */
static inline int ti_flow_key_eq(const struct ti_flow_key *a, const struct ti_flow_key *b)
{
	const ti_word64 *x = (const ti_word64 *)a, *y = (const ti_word64 *)b; /* 5 words */

	return x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && x[3] == y[3] && x[4] == y[4];
}

static inline int ti_key24_eq(const void *a, const void *b)
{
	const ti_word64 *x = (const ti_word64 *)a, *y = (const ti_word64 *)b; /* 3 words */

	return x[0] == y[0] && x[1] == y[1] && x[2] == y[2];
}

static inline int ti_addr_key_eq(const struct ti_addr_key *a, const struct ti_addr_key *b)
{
	return ti_key24_eq(a, b);
}

static inline int ti_drop_key_eq(const struct ti_drop_key *a, const struct ti_drop_key *b)
{
	return ti_key24_eq(a, b);
}

_Static_assert(sizeof(struct ti_flow_key) == 40, "ti_flow_hash reads 10 words");
_Static_assert(sizeof(struct ti_addr_key) == 24, "ti_addr_hash reads 6 words");
_Static_assert(sizeof(struct ti_drop_key) == 24, "ti_drop_hash reads 6 words");

/* Buckets for max entries: a power of two, at least one. */
static inline __u32 ti_table_buckets(__u32 max_entries)
{
	__u32 b = 1;

	while (b * TI_TABLE_WAYS < max_entries && b < (1u << 24))
		b <<= 1;
	return b;
}

#endif /* TI_TABLE_H */
