// SPDX-License-Identifier: GPL-2.0-only
/* recorder.c: the tcpinspect.recorder class, the session's flight recorder.
 *
 * session:recorder{ seconds =, bytes =, snaplen = } keeps the last
 * `seconds` of the session's records (segments and drops) in one block of
 * user-space memory of `bytes` bytes, a log that wraps: each record is an
 * 8-byte header and the record as the ring (or the replay) handed it out,
 * struct ti_event and at most `snaplen` captured bytes, 8-aligned.  The
 * session's poll pushes every record into it from C (session.c's
 * on_sample: no Lua call, no table, one memcpy); what does not fit pushes
 * the oldest records out, which are counted (pushed_out), as are those
 * older than `seconds` (expired).
 *
 * rec:dump(path [, {seconds =, filter =}]) first drains what the ring
 * still holds into the window (outside a callback of the session: inside
 * one, the ring is being read and the window ends at the record being
 * delivered).  Records drained so are not lost to the callbacks: the
 * window remembers where delivery stands, and the next poll delivers them
 * before it reads the ring (ti_recorder_pending).  Then it writes the
 * records of the last `seconds` through pcapfile.c's writer: the same file
 * rules as session:dump (O_NOFOLLOW, 0600, write errors with the count of
 * records in the file, which is cut back to its last whole record).
 *
 * The window belongs to the session (s->rec): the session frees it when it
 * closes; the recorder userdata holds the session in its user value and
 * frees the window on rec:close() or when it is collected.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "ti.h"
#include "expr.h"
#include "pcapfile.h"

#define UV_SESSION 1

#define REC_HDR 8u
#define REC_ALIGN(n) (((n) + 7u) & ~7u)
#define REC_DEFAULT_SECONDS 30.0
#define REC_DEFAULT_BYTES (64ull << 20)
#define REC_MIN_BYTES (64ull << 10)
#define REC_MAX_BYTES (1ull << 40)
/* a dump drains the ring for at most this long (a flood cannot hold it) */
#define REC_DRAIN_SLICE_NS 50000000ull

struct rec_hdr {
	uint32_t len; /* bytes of the record (struct ti_event + caplen); 0: the log wraps here */
	uint32_t pad;
};

struct ti_recorder {
	uint8_t *buf;
	uint64_t cap;	      /* bytes */
	uint64_t seconds_ns;  /* the window's length */
	uint32_t snaplen;     /* captured bytes kept of each record */
	uint64_t head, tail;  /* offsets of the oldest record and of the next free byte */
	uint64_t count;	      /* records held */
	uint64_t used;	      /* bytes they take (headers included) */
	uint64_t head_seq;    /* sequence number of the oldest record */
	uint64_t tail_seq;    /* of the next record pushed */
	uint64_t deliver_seq; /* records below it have been delivered to the callbacks */
	uint64_t deliver_off; /* where record deliver_seq is (when deliver_seq < tail_seq) */
	uint64_t segments, drops;
	/* counters */
	uint64_t added, added_bytes;
	uint64_t pushed_out, pushed_out_bytes;
	uint64_t expired;
	uint64_t drained;	   /* records a dump took from the ring */
	uint64_t lost_undelivered; /* drained, then pushed out before a poll delivered them */
	uint64_t dumps, dumped;
	uint64_t drain_deadline;
};

struct rec_handle {
	struct ti_recorder *w; /* NULL once closed */
};

static inline struct rec_hdr *hdr_at(const struct ti_recorder *r, uint64_t off)
{
	return (struct rec_hdr *)(r->buf + off);
}

static inline uint64_t rec_size(uint32_t len)
{
	return REC_HDR + REC_ALIGN(len);
}

/* The offset of the record after the one at off (valid while one follows). */
static uint64_t next_off(const struct ti_recorder *r, uint64_t off)
{
	uint64_t n = off + rec_size(hdr_at(r, off)->len);

	if (n + REC_HDR > r->cap || hdr_at(r, n)->len == 0)
		return 0;
	return n;
}

static void evict_head(struct ti_recorder *r, bool expired)
{
	const struct rec_hdr *h = hdr_at(r, r->head);
	const struct ti_event *e = (const void *)(h + 1);
	uint64_t sz = rec_size(h->len);

	if (e->probe == TI_PROBE_KFREE_SKB)
		r->drops--;
	else if (e->probe != TI_PROBE_CONN)
		r->segments--;
	if (expired) {
		r->expired++;
	} else {
		r->pushed_out++;
		r->pushed_out_bytes += sz;
	}
	if (r->deliver_seq == r->head_seq && r->deliver_seq < r->tail_seq) {
		/* drained by a dump, never delivered */
		r->lost_undelivered++;
		r->deliver_seq++;
	}
	r->used -= sz;
	r->count--;
	r->head_seq++;
	if (!r->count) {
		r->head = r->tail = 0;
		return;
	}
	r->head = next_off(r, r->head);
	if (r->deliver_seq == r->head_seq && r->deliver_seq < r->tail_seq)
		r->deliver_off = r->head;
}

/* Records older than `seconds` before now (ns on the records' clock). */
static void expire(struct ti_recorder *r, uint64_t now)
{
	while (r->count) {
		const struct ti_event *e = (const void *)(hdr_at(r, r->head) + 1);

		if (now < r->seconds_ns || e->ts + r->seconds_ns >= now)
			break;
		evict_head(r, true);
	}
}

/* Room for sz bytes: its offset, the oldest records pushed out for it. */
static uint64_t make_room(struct ti_recorder *r, uint64_t sz)
{
	for (;;) {
		if (!r->count) {
			r->head = r->tail = 0;
			return 0;
		}
		if (r->tail > r->head) {
			if (r->cap - r->tail >= sz)
				return r->tail;
			if (r->head >= sz) {
				if (r->cap - r->tail >= REC_HDR)
					hdr_at(r, r->tail)->len = 0; /* wrap mark */
				r->tail = 0;
				return 0;
			}
		} else if (r->head - r->tail >= sz) {
			return r->tail;
		}
		evict_head(r, false);
	}
}

void ti_recorder_push(struct ti_recorder *r, const void *data, size_t size, bool delivered)
{
	const struct ti_event *e = data;
	uint32_t caplen, len;
	uint64_t sz, off;
	struct rec_hdr *h;
	struct ti_event *copy;

	/* the compact record (bpf/tcpinspect.h) is kept whole, its tail 0
	 * (ti_event_copy, below); what is read of it here is in its part */
	if (size < sizeof(*e) && size != TI_EVENT_COMPACT)
		return;
	/* a connection's end (conns = true) is no segment: it passes through
	 * the window only when a dump drained it, to be delivered in order */
	if (e->probe == TI_PROBE_CONN && delivered)
		return;
	caplen = 0; /* the bytes after the record, as many as came */
	if (size > sizeof(*e))
		caplen = e->caplen < size - sizeof(*e) ? e->caplen : (uint32_t)(size - sizeof(*e));
	if (caplen > r->snaplen && e->probe != TI_PROBE_CONN)
		caplen = r->snaplen;
	len = (uint32_t)sizeof(*e) + caplen;
	sz = rec_size(len);
	if (sz > r->cap) {
		if (!delivered)
			r->lost_undelivered++;
		return;
	}
	expire(r, e->ts);
	off = make_room(r, sz);
	h = hdr_at(r, off);
	h->len = len;
	h->pad = 0;
	copy = (struct ti_event *)(h + 1);
	ti_event_copy(copy, data, size, len);
	copy->caplen = (__u16)caplen;
	if (r->deliver_seq == r->tail_seq) {
		if (delivered)
			r->deliver_seq++;
		else
			r->deliver_off = off;
	}
	r->tail = off + sz;
	r->tail_seq++;
	r->count++;
	r->used += sz;
	r->added++;
	r->added_bytes += sz;
	if (e->probe == TI_PROBE_KFREE_SKB)
		r->drops++;
	else if (e->probe != TI_PROBE_CONN)
		r->segments++;
}

bool ti_recorder_has_pending(const struct ti_recorder *r)
{
	return r && r->deliver_seq < r->tail_seq;
}

int ti_recorder_pending(struct ti_recorder *r, ti_record_fn fn, void *ctx)
{
	while (r->deliver_seq < r->tail_seq) {
		const struct rec_hdr *h = hdr_at(r, r->deliver_off);
		int rc;

		r->deliver_seq++;
		if (r->deliver_seq < r->tail_seq)
			r->deliver_off = next_off(r, r->deliver_off);
		rc = fn(ctx, h + 1, h->len);
		if (rc < 0)
			return rc;
	}
	return 0;
}

void ti_recorder_free(struct ti_recorder *r)
{
	if (r) {
		free(r->buf);
		free(r);
	}
}

/* ---- the Lua class -------------------------------------------------------- */

static struct ti_session *handle_session(lua_State *L, int idx)
{
	struct ti_session *s;

	lua_getiuservalue(L, idx, UV_SESSION);
	s = lua_touserdata(L, -1);
	lua_pop(L, 1);
	return s;
}

/* The window of the recorder at idx (raises when it or its session is closed). */
static struct ti_recorder *check_recorder(lua_State *L, int idx, struct ti_session **sp)
{
	struct rec_handle *h = luaL_checkudata(L, idx, TI_RECORDER_MT);
	struct ti_session *s = handle_session(L, idx);

	if (!h->w || !s || s->state != TI_OPEN || s->rec != h->w)
		luaL_error(L, "attempt to use a closed recorder");
	if (sp)
		*sp = s;
	return h->w;
}

static double opt_number(lua_State *L, int idx, const char *key, double def, double lo, double hi)
{
	double v = 0;

	if (lua_getfield(L, idx, key) == LUA_TNIL) {
		lua_pop(L, 1);
		return def;
	}
	if (!lua_isnumber(L, -1) || lua_type(L, -1) != LUA_TNUMBER || !((v = lua_tonumber(L, -1)) >= lo) || v > hi) {
		char range[64];

		snprintf(range, sizeof(range), "%.15g to %.15g", lo, hi);
		ti_option_error(L, key, "expected a number %s, got %s", range, luaL_tolstring(L, -1, NULL));
	}
	lua_pop(L, 1);
	return v;
}

static void check_keys(lua_State *L, int idx, const char *const keys[], const char *what)
{
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		bool ok = false;

		for (int i = 0; keys[i] && !ok; i++)
			ok = lua_type(L, -2) == LUA_TSTRING && !strcmp(lua_tostring(L, -2), keys[i]);
		if (!ok) {
			const char *name = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
			const char *hint = ti_suggest(name, keys);

			ti_option_error(L, name, "unknown %s option '%s'%s%s%s", what, luaL_tolstring(L, -2, NULL),
					hint ? " (did you mean '" : "", hint ? hint : "", hint ? "'?)" : "");
		}
		lua_pop(L, 1);
	}
}

const char *const ti_recorder_option_keys[] = { "seconds", "bytes", "snaplen", NULL };
const char *const ti_recorder_dump_keys[] = { "seconds", "filter", NULL };
const char *const ti_recorder_stat_names[] = {
	"records", "bytes",   "segments",	  "drops", "added",  "added_bytes", "pushed_out",  "pushed_out_bytes",
	"expired", "drained", "lost_undelivered", "dumps", "dumped", "capacity",    "undelivered", NULL,
};

/* session:recorder{ seconds =, bytes =, snaplen = } -> recorder */
int ti_recorder_new(lua_State *L)
{
	struct ti_session *s = luaL_checkudata(L, 1, TI_SESSION_MT);
	struct ti_recorder *r;
	struct rec_handle *h;
	double seconds, bytes, snaplen;

	if (s->state != TI_OPEN)
		return luaL_error(L, "attempt to use a closed session");
	if (lua_isnoneornil(L, 2)) {
		lua_settop(L, 1);
		lua_newtable(L);
	}
	if (!lua_istable(L, 2))
		return ti_usage_error(L, NULL, "recorder: expected an options table, got %s", luaL_typename(L, 2));
	lua_settop(L, 2);
	check_keys(L, 2, ti_recorder_option_keys, "recorder");
	seconds = opt_number(L, 2, "seconds", REC_DEFAULT_SECONDS, 0.001, 86400.0 * 365);
	bytes = opt_number(L, 2, "bytes", (double)REC_DEFAULT_BYTES, (double)REC_MIN_BYTES, (double)REC_MAX_BYTES);
	snaplen = opt_number(L, 2, "snaplen", s->snaplen, 1, 65535);
	if (bytes != floor(bytes) || snaplen != floor(snaplen))
		ti_option_error(L, bytes != floor(bytes) ? "bytes" : "snaplen", "expected an integer");
	if (!s->events)
		return ti_option_error(L, "events",
				       "recorder: this session was opened with events = false, so no record reaches "
				       "user space; open it with events = true");
	if (s->snaplen == 0)
		return ti_option_error(L, "snaplen",
				       "recorder: this session was opened with snaplen = 0, so its records hold no "
				       "bytes of the segments; open it with snaplen = %d (or more)",
				       (int)snaplen > 0 && lua_getfield(L, 2, "snaplen") != LUA_TNIL ? (int)snaplen
												     : 128);
	if ((uint32_t)snaplen > s->snaplen)
		return ti_option_error(L, "snaplen",
				       "recorder: snaplen %d is more than the session's (%d): open the session with "
				       "snaplen = %d",
				       (int)snaplen, (int)s->snaplen, (int)snaplen);
	if ((uint64_t)bytes < rec_size(sizeof(struct ti_event) + (uint32_t)snaplen))
		return ti_option_error(L, "bytes", "recorder: %I bytes cannot hold one record of snaplen %d (%d bytes)",
				       (lua_Integer)bytes, (int)snaplen,
				       (int)rec_size(sizeof(struct ti_event) + (uint32_t)snaplen));
	if (s->rec)
		return luaL_error(L, "tcpinspect: recorder: this session has a recorder already; "
				     "close it (rec:close()) first");
	h = lua_newuserdatauv(L, sizeof(*h), 1); /* 3 */
	h->w = NULL;
	luaL_setmetatable(L, TI_RECORDER_MT);
	lua_pushvalue(L, 1);
	lua_setiuservalue(L, 3, UV_SESSION);
	r = calloc(1, sizeof(*r));
	if (r)
		r->buf = malloc((size_t)bytes);
	if (!r || !r->buf) {
		free(r);
		return ti_fail(L, -ENOMEM, "recorder: cannot allocate %.0f bytes: give a smaller bytes", bytes);
	}
	r->cap = (uint64_t)bytes;
	r->seconds_ns = (uint64_t)(seconds * 1e9);
	r->snaplen = (uint32_t)snaplen;
	h->w = r;
	s->rec = r;
	return 1;
}

/* The dump's drain: ring records into the window, not yet delivered. */
static int drain_one(void *ctx, const void *data, size_t size)
{
	struct ti_recorder *r = ctx;
	struct timespec ts;

	ti_recorder_push(r, data, size, false);
	r->drained++;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec >= r->drain_deadline ? -ETIME : 0;
}

/* rec:dump(path [, { seconds =, filter = }]) -> segments, drops */
static int recorder_dump(lua_State *L)
{
	struct ti_session *s;
	struct ti_recorder *r = check_recorder(L, 1, &s);
	struct ti_cbpf_prog *prog = NULL;
	struct ti_kernel_info info;
	struct ti_pcap_writer *w;
	uint64_t from, off, segs = 0, drops = 0;
	double seconds = (double)r->seconds_ns / 1e9;
	const char *path;
	char why[2048];
	int err;

	if (lua_type(L, 2) != LUA_TSTRING)
		ti_option_error(L, "path", "expected a file name (\"-\": stdout), got %s", luaL_typename(L, 2));
	path = lua_tostring(L, 2);
	if (strlen(path) != lua_rawlen(L, 2) || !*path)
		ti_option_error(L, "path", "an empty path or one holding a NUL byte");
	if (!lua_isnoneornil(L, 3)) {
		if (!lua_istable(L, 3))
			ti_usage_error(L, NULL, "dump: expected an options table, got %s", luaL_typename(L, 3));
		check_keys(L, 3, ti_recorder_dump_keys, "dump");
		seconds = opt_number(L, 3, "seconds", seconds, 0, 86400.0 * 365);
		if (lua_getfield(L, 3, "filter") != LUA_TNIL) {
			if (lua_type(L, -1) != LUA_TSTRING)
				ti_option_error(L, "filter", "expected a filter expression (tcpdump's syntax), got %s",
						luaL_typename(L, -1));
			prog = lua_newuserdatauv(L, sizeof(*prog), 0);
			if (ti_expr_compile(lua_tostring(L, -2), prog, why, sizeof(why)))
				ti_option_error(L, "filter", "%s", why);
			if (!prog->len)
				prog = NULL;
		}
	}
	/* what the ring still holds: into the window (not from a callback:
	 * the ring is being read, and the window ends at its record) */
	if (!s->L) {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
		r->drain_deadline = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec + REC_DRAIN_SLICE_NS;
		err = ti_kernel_consume(s->k, 0, drain_one, r, why, sizeof(why));
		if (err)
			return ti_fail(L, err, "dump: %s", why);
	}
	ti_kernel_describe(s->k, &info);
	expire(r, info.clock);
	from = info.clock > (uint64_t)(seconds * 1e9) ? info.clock - (uint64_t)(seconds * 1e9) : 0;
	w = malloc(sizeof(*w));
	if (!w)
		return ti_fail(L, -ENOMEM, "dump: out of memory");
	err = ti_pcap_writer_open(w, path, r->snaplen, (int64_t)(s->realtime_offset * 1e9), why, sizeof(why));
	if (err) {
		free(w);
		return ti_fail(L, err, "dump: %s", why);
	}
	off = r->head;
	for (uint64_t i = 0; i < r->count; i++, off = i < r->count ? next_off(r, off) : 0) {
		const struct rec_hdr *h = hdr_at(r, off);
		const struct ti_event *e = (const void *)(h + 1);
		const uint8_t *bytes = (const uint8_t *)(e + 1);

		if (e->ts < from || e->probe == TI_PROBE_CONN)
			continue;
		if (prog && !ti_cbpf_run(prog, bytes, e->caplen, e->wirelen))
			continue;
		ti_pcap_writer_write(w, e, bytes, e->caplen, e->wirelen);
		if (e->probe == TI_PROBE_KFREE_SKB)
			drops++;
		else
			segs++;
	}
	err = ti_pcap_writer_close(w);
	if (err) {
		ti_pcap_writer_why(w, err, why, sizeof(why));
		free(w);
		return ti_fail(L, err, "dump: %s", why);
	}
	free(w);
	r->dumps++;
	r->dumped += segs + drops;
	lua_pushinteger(L, (lua_Integer)segs);
	lua_pushinteger(L, (lua_Integer)drops);
	return 2;
}

/* rec:stats() -> table */
static int recorder_stats(lua_State *L)
{
	struct ti_recorder *r = check_recorder(L, 1, NULL);
	const uint64_t v[] = {
		r->count,
		r->used,
		r->segments,
		r->drops,
		r->added,
		r->added_bytes,
		r->pushed_out,
		r->pushed_out_bytes,
		r->expired,
		r->drained,
		r->lost_undelivered,
		r->dumps,
		r->dumped,
		r->cap,
		r->tail_seq - r->deliver_seq,
	};

	lua_createtable(L, 0, 18);
	for (int i = 0; ti_recorder_stat_names[i]; i++) {
		lua_pushinteger(L, (lua_Integer)v[i]);
		lua_setfield(L, -2, ti_recorder_stat_names[i]);
	}
	lua_pushnumber(L, (double)r->seconds_ns / 1e9);
	lua_setfield(L, -2, "seconds");
	lua_pushinteger(L, r->snaplen);
	lua_setfield(L, -2, "snaplen");
	if (r->count) {
		const struct ti_event *first = (const void *)(hdr_at(r, r->head) + 1);

		lua_pushnumber(L, (double)first->ts / 1e9);
		lua_setfield(L, -2, "oldest");
	}
	return 1;
}

/* rec:close(), __gc, __close: the window freed (idempotent) */
static int recorder_close(lua_State *L)
{
	struct rec_handle *h = luaL_checkudata(L, 1, TI_RECORDER_MT);
	struct ti_session *s = handle_session(L, 1);

	if (h->w) {
		if (s && s->rec == h->w) {
			if (s->L)
				return luaL_error(L, "cannot close a recorder from inside a callback of its session; "
						     "close it after poll returns");
			s->rec = NULL;
			ti_recorder_free(h->w);
		}
		h->w = NULL;
	}
	lua_pushboolean(L, 1);
	return 1;
}

static int recorder_gc(lua_State *L)
{
	struct rec_handle *h = luaL_checkudata(L, 1, TI_RECORDER_MT);
	struct ti_session *s = handle_session(L, 1);

	/* a session collected with it (the same cycle) has freed the window */
	if (h->w && s && s->rec == h->w) {
		s->rec = NULL;
		ti_recorder_free(h->w);
	}
	h->w = NULL;
	return 0;
}

static int recorder_tostring(lua_State *L)
{
	struct rec_handle *h = luaL_checkudata(L, 1, TI_RECORDER_MT);
	struct ti_session *s = handle_session(L, 1);

	if (!h->w || !s || s->rec != h->w)
		lua_pushliteral(L, "tcpinspect.recorder (closed)");
	else
		lua_pushfstring(L, "tcpinspect.recorder (%I records, %I bytes)", (lua_Integer)h->w->count,
				(lua_Integer)h->w->used);
	return 1;
}

void ti_recorder_register(lua_State *L)
{
	static const luaL_Reg meta[] = {
		{ "__gc", recorder_gc },
		{ "__close", recorder_close },
		{ "__tostring", recorder_tostring },
		{ NULL, NULL },
	};
	static const luaL_Reg methods[] = {
		{ "dump", recorder_dump },
		{ "stats", recorder_stats },
		{ "close", recorder_close },
		{ NULL, NULL },
	};

	luaL_newmetatable(L, TI_RECORDER_MT);
	luaL_setfuncs(L, meta, 0);
	luaL_newlib(L, methods);
	lua_setfield(L, -2, "__index");
	lua_pop(L, 1);
}
