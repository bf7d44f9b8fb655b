// SPDX-License-Identifier: GPL-2.0-only
/* kernel_maps.c: reading the aggregate maps, merged across CPUs (no Lua).
 *
 *   flows, sources,  per-CPU set-associative tables (bpf/ti_table.h): the
 *   drops            entries of a key on every CPU are merged into one;
 *                    a key's bucket is 4 consecutive elements, and its
 *                    summary (hashes, packets) the element of the bucket's
 *                    index in flows_sum, sources_sum, drops_sum: a delete
 *                    or a clear writes it too
 *   ports            per-CPU array indexed by port: ports with packets
 *   len_hist         per-CPU array of slots: every slot
 *
 * The merging here serves both backends, through their map operations
 * (kernel_int.h); the live backend's operations are at the end: a snapshot
 * reads a whole map with BPF_MAP_LOOKUP_BATCH (one call for tens of
 * thousands of entries), lookup and delete read and write only the key's
 * bucket.  Every function returns 0 or -errno; -ENOENT is "no such
 * key".  Entries are laid out as the key (ti_map_key_size) followed by the
 * value (ti_map_val_size).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "kernel_int.h"
#include "ti_table.h"
#include "tcpinspect.skel.h"

size_t ti_map_key_size(enum ti_map_id m)
{
	switch (m) {
	case TI_MAP_FLOWS: return sizeof(struct ti_flow_key);
	case TI_MAP_SOURCES: return sizeof(struct ti_addr_key);
	case TI_MAP_DROPS: return sizeof(struct ti_drop_key);
	default: return sizeof(uint64_t); /* ports: the port, len_hist: the slot (as u64) */
	}
}

size_t ti_map_val_size(enum ti_map_id m)
{
	switch (m) {
	case TI_MAP_FLOWS: return sizeof(struct ti_flow_val);
	case TI_MAP_PORTS: return sizeof(struct ti_port_val);
	case TI_MAP_SOURCES: return sizeof(struct ti_source_val);
	case TI_MAP_DROPS: return sizeof(struct ti_drop_val);
	default: return sizeof(uint64_t);
	}
}

/* The kernel's value size of one CPU's element, and the stride of the
 * per-CPU copies a lookup returns. */
static size_t elem_size(enum ti_map_id m)
{
	switch ((int)m) { /* TI_MAP_SUM ids too */
	case TI_MAP_FLOWS: return sizeof(struct ti_flow_entry);
	case TI_MAP_SOURCES: return sizeof(struct ti_source_entry);
	case TI_MAP_DROPS: return sizeof(struct ti_drop_entry);
	case TI_MAP_SUM(TI_MAP_FLOWS):
	case TI_MAP_SUM(TI_MAP_SOURCES):
	case TI_MAP_SUM(TI_MAP_DROPS): return sizeof(struct ti_table_sum);
	default: return ti_map_val_size(m);
	}
}

size_t ti_map_stride(enum ti_map_id m)
{
	return (elem_size(m) + 7) & ~(size_t)7;
}

#define stride ti_map_stride

static uint32_t nkeys(const struct ti_kernel *k, enum ti_map_id m)
{
	return k->ops->map_elems(k, m);
}

/* element i of map m, every CPU's copy: 0 or -errno */
static int elem_get(const struct ti_kernel *k, enum ti_map_id m, uint32_t i, void *buf)
{
	return k->ops->map_read(k, m, i, 1, buf);
}

static int elem_put(const struct ti_kernel *k, enum ti_map_id m, uint32_t i, const void *buf)
{
	return k->ops->map_write(k, m, i, 1, buf);
}

/* Read every element of a per-CPU array: vals gets n * ncpus strides. */
static int read_all(int fd, uint32_t n, size_t vstride, int ncpus, void *vals)
{
	uint32_t *keys = malloc(n * sizeof(*keys)), in = 0, out = 0, done = 0;
	int err = 0;

	if (!keys)
		return -ENOMEM;
	while (done < n) {
		uint32_t count = n - done;

		if (bpf_map_lookup_batch(fd, done ? &in : NULL, &out, keys + done,
					 (uint8_t *)vals + (size_t)done * vstride * (size_t)ncpus, &count, NULL)) {
			err = -errno;
			done += count;
			if (err == -ENOENT) { /* the end, with the last elements read */
				err = 0;
				break;
			}
			if (err == -EINVAL || err == -EOPNOTSUPP || err == -524) {
				/* no batch operations: one lookup per element */
				err = 0;
				for (uint32_t i = done; i < n && !err; i++)
					if (bpf_map_lookup_elem(fd, &i,
								(uint8_t *)vals + (size_t)i * vstride * (size_t)ncpus))
						err = -errno;
				done = n;
			}
			break;
		}
		done += count;
		in = out;
	}
	free(keys);
	return err;
}

/* ---- merging a key's entries of every CPU -------------------------------------- */

static void merge(enum ti_map_id m, void *into, const void *from, bool first)
{
	if (first) {
		memcpy(into, from, ti_map_val_size(m));
		return;
	}
	if (m == TI_MAP_FLOWS) {
		struct ti_flow_val *a = into;
		const struct ti_flow_val *b = from;

		a->packets += b->packets;
		a->bytes += b->bytes;
		a->flags_seen |= b->flags_seen;
		if (b->first_ts < a->first_ts)
			a->first_ts = b->first_ts;
		if (b->last_ts > a->last_ts)
			a->last_ts = b->last_ts;
	} else if (m == TI_MAP_DROPS) {
		struct ti_drop_val *a = into;
		const struct ti_drop_val *b = from;

		a->packets += b->packets;
		a->bytes += b->bytes;
		if (b->first_ts < a->first_ts)
			a->first_ts = b->first_ts;
		if (b->last_ts > a->last_ts)
			a->last_ts = b->last_ts;
	} else if (m == TI_MAP_SOURCES) {
		struct ti_source_val *a = into;
		const struct ti_source_val *b = from;

		a->packets += b->packets;
		a->bytes += b->bytes;
		a->syns += b->syns;
	} else if (m == TI_MAP_PORTS) {
		struct ti_port_val *a = into;
		const struct ti_port_val *b = from;

		a->packets += b->packets;
		a->bytes += b->bytes;
	} else {
		*(uint64_t *)into += *(const uint64_t *)from;
	}
}

/* A table entry (one CPU's copy of an element): key, value and "in use". */
static void table_entry(enum ti_map_id m, const void *elem, const void **key, const void **val, bool *used)
{
	if (m == TI_MAP_FLOWS) {
		const struct ti_flow_entry *e = elem;

		*key = &e->key, *val = &e->val, *used = e->val.packets != 0;
	} else if (m == TI_MAP_DROPS) {
		const struct ti_drop_entry *e = elem;

		*key = &e->key, *val = &e->val, *used = e->val.packets != 0;
	} else {
		const struct ti_source_entry *e = elem;

		*key = &e->key, *val = &e->val, *used = e->val.packets != 0;
	}
}

static bool is_table(enum ti_map_id m)
{
	return m == TI_MAP_FLOWS || m == TI_MAP_SOURCES || m == TI_MAP_DROPS;
}

/* The hash the BPF program places a key with (bpf/ti_table.h). */
static uint32_t key_hash(enum ti_map_id m, const void *key)
{
	return m == TI_MAP_FLOWS ? ti_flow_hash(key) : m == TI_MAP_DROPS ? ti_drop_hash(key) : ti_addr_hash(key);
}

static int append(struct ti_snapshot *s, const void *key, size_t ksize)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 256;
		uint8_t *e = realloc(s->e, cap * s->esize);

		if (!e)
			return -ENOMEM;
		s->e = e;
		s->cap = cap;
	}
	memset(s->e + s->n * s->esize, 0, s->esize);
	memcpy(s->e + s->n * s->esize, key, ksize);
	return (int)s->n++;
}

int ti_kernel_map_snapshot(const struct ti_kernel *k, enum ti_map_id m, struct ti_snapshot *s)
{
	uint32_t n;
	size_t st = stride(m), ks = ti_map_key_size(m);
	uint8_t *vals;
	uint32_t *index = NULL, mask = 0;
	int err;

	memset(s, 0, sizeof(*s));
	s->map = m;
	s->ksize = ks;
	s->esize = ks + ti_map_val_size(m);
	n = nkeys(k, m);
	if (!n)
		return 0; /* a map this backend has not (a replay's drops): empty */
	vals = malloc((size_t)n * st * (size_t)k->ncpus);
	if (!vals)
		return -ENOMEM;
	if ((err = k->ops->map_read(k, m, 0, n, vals)))
		goto out;
	if (is_table(m)) {
		/* open addressing over the merged entries, by key */
		uint32_t cap = ti_table_buckets(n * (uint32_t)k->ncpus * 2) * TI_TABLE_WAYS;

		mask = cap - 1;
		index = calloc(cap, sizeof(*index));
		if (!index) {
			err = -ENOMEM;
			goto out;
		}
	}
	for (uint32_t i = 0; i < n; i++) {
		if (!is_table(m)) {
			/* an array: the sum over CPUs, for every slot, for ports with packets */
			union {
				struct ti_port_val port;
				uint64_t count;
			} sum;
			uint64_t key = i;
			int at;

			for (int c = 0; c < k->ncpus; c++)
				merge(m, &sum, vals + ((size_t)i * (size_t)k->ncpus + (size_t)c) * st, c == 0);
			if (m == TI_MAP_PORTS && !sum.port.packets)
				continue;
			if ((at = append(s, &key, ks)) < 0) {
				err = at;
				goto out;
			}
			memcpy(s->e + (size_t)at * s->esize + ks, &sum, ti_map_val_size(m));
			continue;
		}
		for (int c = 0; c < k->ncpus; c++) {
			const void *key, *val;
			bool used;
			uint32_t h;

			table_entry(m, vals + ((size_t)i * (size_t)k->ncpus + (size_t)c) * st, &key, &val, &used);
			if (!used)
				continue;
			h = key_hash(m, key);
			for (;; h++) {
				uint32_t *slot = &index[h & mask];

				if (!*slot) {
					int at = append(s, key, ks);

					if (at < 0) {
						err = at;
						goto out;
					}
					*slot = (uint32_t)at + 1;
					merge(m, s->e + (size_t)at * s->esize + ks, val, true);
					break;
				}
				if (!memcmp(s->e + (size_t)(*slot - 1) * s->esize, key, ks)) {
					merge(m, s->e + (size_t)(*slot - 1) * s->esize + ks, val, false);
					break;
				}
			}
		}
	}
out:
	free(index);
	free(vals);
	if (err)
		ti_snapshot_free(s);
	return err;
}

void ti_snapshot_free(struct ti_snapshot *s)
{
	free(s->e);
	s->e = NULL;
	s->n = s->cap = 0;
}

/* ---- one key ------------------------------------------------------------------------ */

/* The elements a key can be in: its bucket's (tables), or its index (arrays). */
static int elems_of(const struct ti_kernel *k, enum ti_map_id m, const void *key, uint32_t *first)
{
	uint32_t n = nkeys(k, m);

	if (n < TI_TABLE_WAYS && is_table(m))
		return 0; /* a map this backend has not (a replay's drops) */
	if (is_table(m)) {
		*first = (key_hash(m, key) & (n / TI_TABLE_WAYS - 1)) * TI_TABLE_WAYS;
		return TI_TABLE_WAYS;
	}
	*first = (uint32_t) * (const uint64_t *)key;
	return *first < n ? 1 : 0;
}

/* Entry i of table m was deleted on the CPUs where buf (its per-CPU
 * copies, as written back) holds a free entry: free its way in the
 * bucket's summary on those CPUs, so that the BPF program sees it free. */
static int sum_free(const struct ti_kernel *k, enum ti_map_id m, uint32_t i, const uint8_t *buf)
{
	size_t st = stride(m), sst = stride(TI_MAP_SUM(m));
	uint8_t *sums = malloc(sst * (size_t)k->ncpus);
	uint32_t bucket = i / TI_TABLE_WAYS;
	int err;

	if (!sums)
		return -ENOMEM;
	if (!(err = k->ops->map_read(k, TI_MAP_SUM(m), bucket, 1, sums))) {
		for (int c = 0; c < k->ncpus; c++) {
			const void *key, *val;
			bool used;

			table_entry(m, buf + (size_t)c * st, &key, &val, &used);
			if (!used)
				((struct ti_table_sum *)(sums + (size_t)c * sst))->packets[i % TI_TABLE_WAYS] = 0;
		}
		err = k->ops->map_write(k, TI_MAP_SUM(m), bucket, 1, sums);
	}
	free(sums);
	return err;
}

/* Look key up (val: the merged value) and, with del, remove it from every
 * CPU.  0 or -ENOENT or -errno. */
static int find(const struct ti_kernel *k, enum ti_map_id m, const void *key, void *val, bool del)
{
	size_t st = stride(m), ks = ti_map_key_size(m);
	uint8_t *buf = malloc(st * (size_t)k->ncpus), tmp[64];
	int n, err = 0;
	bool found = false;
	uint32_t first;

	if (!buf)
		return -ENOMEM;
	n = elems_of(k, m, key, &first);
	for (uint32_t i = first; i < first + (uint32_t)n && !err; i++) {
		bool here = false;

		if ((err = elem_get(k, m, i, buf)))
			break;
		for (int c = 0; c < k->ncpus; c++) {
			uint8_t *v = buf + (size_t)c * st;

			if (!is_table(m)) {
				merge(m, val ? val : tmp, v, c == 0);
				here |= m == TI_MAP_LEN_HIST || ((struct ti_port_val *)v)->packets != 0;
				if (del)
					memset(v, 0, elem_size(m));
				continue;
			}
			{
				const void *ekey, *eval;
				bool used;

				table_entry(m, v, &ekey, &eval, &used);
				if (!used || memcmp(ekey, key, ks))
					continue;
				merge(m, val ? val : tmp, eval, !found && !here);
				here = true;
				if (del)
					memset(v, 0, elem_size(m)); /* a free entry is all zeroes */
			}
		}
		found |= here;
		if (del && here && !(err = elem_put(k, m, i, buf)) && is_table(m))
			err = sum_free(k, m, i, buf);
	}
	if (!err && !found)
		err = -ENOENT;
	free(buf);
	return err;
}

int ti_kernel_map_lookup(const struct ti_kernel *k, enum ti_map_id m, const void *key, void *val)
{
	return find(k, m, key, val, false);
}

int ti_kernel_map_delete(const struct ti_kernel *k, enum ti_map_id m, const void *key)
{
	return find(k, m, key, NULL, true);
}

/* Zero every element. */
int ti_kernel_map_clear(const struct ti_kernel *k, enum ti_map_id m)
{
	uint32_t n = nkeys(k, m);
	uint8_t *zero;
	int err;

	if (!n)
		return 0; /* a map this backend has not (a replay's drops) */
	zero = calloc(n, stride(m) * (size_t)k->ncpus);
	if (!zero)
		return -ENOMEM;
	err = k->ops->map_write(k, m, 0, n, zero);
	free(zero);
	if (!err && is_table(m)) {
		/* and its summary: every way free (fewer elements than the table) */
		n = nkeys(k, TI_MAP_SUM(m));
		zero = n ? calloc(n, stride(TI_MAP_SUM(m)) * (size_t)k->ncpus) : NULL;
		if (n && !zero)
			return -ENOMEM;
		err = n ? k->ops->map_write(k, TI_MAP_SUM(m), 0, n, zero) : 0;
		free(zero);
	}
	return err;
}

/* ---- the live backend's map operations ---------------------------------------------- */

static int map_fd(const struct ti_kernel *k, enum ti_map_id map)
{
	const struct tcpinspect_bpf *sk = k->skel;

	if (!sk)
		return -EBADF;
	switch ((int)map) { /* TI_MAP_SUM ids too */
	case TI_MAP_FLOWS: return bpf_map__fd(sk->maps.flows);
	case TI_MAP_PORTS: return bpf_map__fd(sk->maps.ports);
	case TI_MAP_SOURCES: return bpf_map__fd(sk->maps.sources);
	case TI_MAP_LEN_HIST: return bpf_map__fd(sk->maps.len_hist);
	case TI_MAP_DROPS: return bpf_map__fd(sk->maps.drops);
	case TI_MAP_SUM(TI_MAP_FLOWS): return bpf_map__fd(sk->maps.flows_sum);
	case TI_MAP_SUM(TI_MAP_SOURCES): return bpf_map__fd(sk->maps.sources_sum);
	case TI_MAP_SUM(TI_MAP_DROPS): return bpf_map__fd(sk->maps.drops_sum);
	default: return -EINVAL;
	}
}

uint32_t ti_live_map_elems(const struct ti_kernel *k, enum ti_map_id m)
{
	if (!k->skel)
		return 0;
	switch ((int)m) { /* TI_MAP_SUM ids too */
	case TI_MAP_FLOWS: return bpf_map__max_entries(k->skel->maps.flows);
	case TI_MAP_SOURCES: return bpf_map__max_entries(k->skel->maps.sources);
	case TI_MAP_PORTS: return bpf_map__max_entries(k->skel->maps.ports);
	case TI_MAP_DROPS: return bpf_map__max_entries(k->skel->maps.drops);
	case TI_MAP_SUM(TI_MAP_FLOWS): return bpf_map__max_entries(k->skel->maps.flows_sum);
	case TI_MAP_SUM(TI_MAP_SOURCES): return bpf_map__max_entries(k->skel->maps.sources_sum);
	case TI_MAP_SUM(TI_MAP_DROPS): return bpf_map__max_entries(k->skel->maps.drops_sum);
	default: return bpf_map__max_entries(k->skel->maps.len_hist);
	}
}

/* One element: bpf_map_lookup_elem; every element from 0: in batches. */
int ti_live_map_read(const struct ti_kernel *k, enum ti_map_id m, uint32_t first, uint32_t n, void *vals)
{
	size_t bytes = stride(m) * (size_t)k->ncpus;
	int fd = map_fd(k, m), err = 0;

	if (fd < 0)
		return fd;
	if (first == 0 && n > 1)
		return read_all(fd, n, stride(m), k->ncpus, vals);
	for (uint32_t i = first; i < first + n && !err; i++)
		if (bpf_map_lookup_elem(fd, &i, (uint8_t *)vals + (size_t)(i - first) * bytes))
			err = -errno;
	return err;
}

/* One element: bpf_map_update_elem; every element from 0: one
 * BPF_MAP_UPDATE_BATCH (65536 ports in one call), or one update per
 * element where the kernel has no batch operations. */
int ti_live_map_write(const struct ti_kernel *k, enum ti_map_id m, uint32_t first, uint32_t n, const void *vals)
{
	size_t bytes = stride(m) * (size_t)k->ncpus;
	uint32_t *keys, count = n;
	int fd = map_fd(k, m), err = 0;

	if (fd < 0)
		return fd;
	if (first == 0 && n > 1) {
		keys = malloc(n * sizeof(*keys));
		if (!keys)
			return -ENOMEM;
		for (uint32_t i = 0; i < n; i++)
			keys[i] = i;
		err = bpf_map_update_batch(fd, keys, vals, &count, NULL) ? -errno : 0;
		free(keys);
		if (err != -EINVAL && err != -EOPNOTSUPP && err != -524)
			return err;
		err = 0;
	}
	for (uint32_t i = first; i < first + n && !err; i++)
		if (bpf_map_update_elem(fd, &i, (const uint8_t *)vals + (size_t)(i - first) * bytes, BPF_EXIST))
			err = -errno;
	return err;
}
