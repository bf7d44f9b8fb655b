// SPDX-License-Identifier: GPL-2.0-only
/* session.c: the tcpinspect.session class.
 *
 * open() checks every option (raising on mistakes) and hands them to the
 * kernel layer (kernel.h), which loads and attaches, trying the modes of
 * auto in turn; an environment failure returns nil, message, errno.  This
 * file holds only Lua state: the session's user values hold the callback
 * (1), the reused packet view (2), the info table behind
 * session.mode/.probes/.fallback_reason (3), the message handler (4), the
 * traceback of the last callback error (5) and the drop callback (6).
 *
 * Events: the ring callback copies each record into the view and calls the
 * Lua function under lua_pcall with a message handler.  An error stops the
 * ring consumer with a negative return (libbpf has already moved past that
 * record, so nothing is redelivered) and is raised again once the consumer
 * has returned, from a safe frame, as the same value: a string gets the
 * traceback appended, any other value is raised unchanged and its
 * traceback is kept for session:traceback().
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "ti.h"
#include "pcapfile.h"

#define UV_CALLBACK 1
#define UV_VIEW 2
#define UV_INFO 3
#define UV_MSGH 4
#define UV_TRACEBACK 5
#define UV_DROP 6
#define UV_CONN 7
#define NUV 7

const char *const ti_stat_names[TI_STAT_MAX + 1] = {
#define TI_X(id, name) name,
	TI_STATS(TI_X)
#undef TI_X
		NULL,
};

/* The fields of session.X besides the methods (push_info, session_index). */
const char *const ti_session_fields[] = {
	"mode", "fallback_reason", "probes",  "ring_size",  "events", "sample", "closed",
	"file", "ended",	   "next_ts", "aggregates", NULL,
};

static struct ti_session *check_session(lua_State *L, int idx)
{
	struct ti_session *s = luaL_checkudata(L, idx, TI_SESSION_MT);

	if (s->state != TI_OPEN)
		luaL_error(L, "attempt to use a closed session");
	return s;
}

static int on_sample(void *ctx, const void *data, size_t size);

/* ---- open ----------------------------------------------------------------- */

static double realtime_offset(void)
{
	struct timespec rt, mono;

	clock_gettime(CLOCK_REALTIME, &rt);
	clock_gettime(CLOCK_MONOTONIC, &mono);
	return (double)(rt.tv_sec - mono.tv_sec) + (double)(rt.tv_nsec - mono.tv_nsec) / 1e9;
}

/* Hooks on interfaces of other network namespaces: tell the packets
 * their names (p.probe). */
static void note_dev(void *ctx, const struct ti_hook_info *h)
{
	if (h->dev && h->netns != *(const uint32_t *)ctx)
		ti_packet_note_dev(h->netns, h->ifindex, h->dev);
}

static void note_devs(const struct ti_session *s)
{
	uint32_t here = ti_netns_inode();

	ti_kernel_hooks(s->k, note_dev, &here);
}

/* session.probes: each hook's status.  In tc mode it follows the link
 * monitor (interfaces attached later, or let go), so it is built anew
 * after a change. */
static void set_probe(void *ctx, const struct ti_hook_info *h)
{
	lua_State *L = ctx;

	lua_pushstring(L, h->status);
	lua_setfield(L, -2, h->probe);
}

static void push_probes(lua_State *L, const struct ti_session *s)
{
	lua_newtable(L);
	ti_kernel_hooks(s->k, set_probe, L);
}

static void push_info(lua_State *L, struct ti_session *s, const struct ti_load_opts *o, const char *fallback)
{
	struct ti_kernel_info info;

	ti_kernel_describe(s->k, &info);
	lua_createtable(L, 0, 7);
	lua_pushstring(L, info.mode);
	lua_setfield(L, -2, "mode");
	lua_pushstring(L, fallback);
	lua_setfield(L, -2, "fallback_reason");
	push_probes(L, s);
	lua_setfield(L, -2, "probes");
	lua_pushinteger(L, o->ring_size);
	lua_setfield(L, -2, "ring_size");
	lua_pushboolean(L, o->events);
	lua_setfield(L, -2, "events");
	lua_pushinteger(L, o->sample);
	lua_setfield(L, -2, "sample");
	lua_pushliteral(L, ""); /* a replay's file name, set by ti_session_open_replay */
	lua_setfield(L, -2, "file");
	lua_newtable(L); /* the aggregate maps opened, in ti_map_names' order */
	for (int m = 0, n = 0; m < TI_MAP_COUNT; m++) {
		if (!(o->aggregates & (1u << m)))
			continue;
		lua_pushstring(L, ti_map_names[m]);
		lua_rawseti(L, -2, ++n);
	}
	lua_setfield(L, -2, "aggregates");
}

static int msgh(lua_State *L);

static int dump_stop(struct ti_session *s);

/* Wait up to timeout ms (0: not at all, -1: forever) for records, acting
 * on the news of the tc link monitor (the kernel layer attaches to
 * interfaces that appeared; session.probes and the packets' interface
 * names follow).  0 or -errno. */
static int session_wait(struct ti_session *s, lua_Integer timeout)
{
	int rc = ti_kernel_wait(s->k, timeout);

	if (rc > 0 && (rc & TI_WAIT_HOOKS)) {
		s->probes_changed = true;
		note_devs(s);
	}
	return rc < 0 ? rc : 0;
}

/* Everything a session holds in the kernel and in files, released. */
static void session_close_objects(struct ti_session *s)
{
	s->state = TI_CLOSED;
	dump_stop(s);
	ti_recorder_free(s->rec);
	s->rec = NULL;
	ti_kernel_close(s->k);
	s->k = NULL;
}

/* The session userdata, before its kernel objects exist (state closed). */
static struct ti_session *new_session(lua_State *L)
{
	struct ti_session *s = lua_newuserdatauv(L, sizeof(*s), NUV);

	memset(s, 0, sizeof(*s));
	s->state = TI_CLOSED; /* until everything below worked */
	luaL_setmetatable(L, TI_SESSION_MT);
	s->realtime_offset = realtime_offset();
	s->view = ti_packet_new_view(L);
	lua_setiuservalue(L, -2, UV_VIEW);
	lua_pushvalue(L, -1);
	lua_pushcclosure(L, msgh, 1);
	lua_setiuservalue(L, -2, UV_MSGH);
	return s;
}

int ti_session_open(lua_State *L)
{
	struct ti_kernel_info info;
	struct ti_load_opts o;
	struct ti_filter *f;
	struct ti_session *s;
	char why[2048];
	int err;

	lua_settop(L, 1);
	ti_check_options(L, 1, &o);
	/* the filter is parsed into a userdata so that an error leaks nothing */
	f = lua_newuserdatauv(L, sizeof(*f), 0); /* 2 */
	/* first: without its namespace, filter.dev cannot be named */
	if (o.scope.err)
		return ti_fail(L, o.scope.err, "%s", o.scope.why);
	lua_getfield(L, 1, "filter");
	ti_check_filter(L, -1, f, "filter", o.scope.netns_path);
	ti_check_filter_sockets(L, f, o.sockets);
	lua_pop(L, 1);

	/* the userdata that owns the kernel objects exists before they do */
	s = new_session(L); /* 3 */
	err = ti_kernel_open(&s->k, &o, f, why, sizeof(why));
	if (err)
		return ti_fail(L, err, "%s", why);
	s->state = TI_OPEN;
	s->events = o.events;
	s->drops = o.drops;
	s->sockets = o.sockets;
	s->conns = o.conns;
	s->aggregates = o.aggregates;
	s->snaplen = o.snaplen;
	ti_kernel_describe(s->k, &info);
	snprintf(s->netns_path, sizeof(s->netns_path), "%s",
		 o.scope.netns_path[0] ? o.scope.netns_path : info.netns_path);
	note_devs(s);
	push_info(L, s, &o, why);
	lua_setiuservalue(L, 3, UV_INFO);
	lua_pushvalue(L, 3);
	return 1;
}

/* replay{ file = PATH, ... }: the open() options that mean something for a
 * capture, the others (the hooks' and the ring's) are accepted and ignored,
 * so that the options of a live session replay unchanged. */
static const char *const replay_ignored[] = {
	"mode", "ring_size", "wakeup", "cgroup", "dev", "netns", "container", NULL
};

int ti_session_open_replay(lua_State *L)
{
	struct ti_load_opts o;
	struct ti_filter *f;
	struct ti_session *s;
	const char *file;
	lua_Integer snaplen = 0;
	char why[2048];
	int err;

	lua_settop(L, 1);
	if (!lua_istable(L, 1))
		ti_usage_error(L, NULL, "replay: expected an options table with file = PATH, got %s",
			       luaL_typename(L, 1));
	if (lua_getfield(L, 1, "file") != LUA_TSTRING)
		ti_option_error(L, "file", "expected the path of a pcap file, got %s", luaL_typename(L, -1));
	file = lua_tostring(L, -1);
	if (strlen(file) != lua_rawlen(L, -1))
		ti_option_error(L, "file", "the string holds a NUL byte");
	if (!*file)
		ti_option_error(L, "file", "empty path");
	/* 2: the file name */
	if (lua_getfield(L, 1, "snaplen") != LUA_TNIL) { /* 3 */
		if (!lua_isinteger(L, -1) || (snaplen = lua_tointeger(L, -1)) < 0 || snaplen > 65535)
			ti_option_error(L, "snaplen", "expected bytes 0-65535, got %s", luaL_tolstring(L, -1, NULL));
	}
	lua_settop(L, 2);
	/* the options without file, snaplen and those of the kernel's hooks: 3 */
	lua_newtable(L);
	lua_pushnil(L);
	while (lua_next(L, 1)) {
		bool skip = lua_type(L, -2) == LUA_TSTRING &&
			    (!strcmp(lua_tostring(L, -2), "file") || !strcmp(lua_tostring(L, -2), "snaplen"));

		for (int i = 0; !skip && replay_ignored[i]; i++)
			skip = lua_type(L, -2) == LUA_TSTRING && !strcmp(lua_tostring(L, -2), replay_ignored[i]);
		if (skip) {
			lua_pop(L, 1);
			continue;
		}
		lua_pushvalue(L, -2);
		lua_insert(L, -2);
		lua_settable(L, 3);
	}
	ti_check_options(L, 3, &o);
	f = lua_newuserdatauv(L, sizeof(*f), 0); /* 4 */
	lua_getfield(L, 1, "filter");
	ti_check_filter(L, -1, f, "filter", NULL);
	ti_check_filter_sockets(L, f, o.sockets);
	lua_pop(L, 1);

	s = new_session(L); /* 5 */
	err = ti_kernel_open_replay(&s->k, &o, f, file, (uint32_t)snaplen, why, sizeof(why));
	if (err)
		return ti_fail(L, err, "%s", why);
	s->state = TI_OPEN;
	s->events = o.events;
	s->drops = o.drops;	/* accepted, so scripts run unchanged; no drop comes */
	s->sockets = o.sockets; /* accepted too; the socket fields stay nil */
	s->conns = o.conns;
	s->aggregates = o.aggregates;
	s->snaplen = (uint32_t)snaplen;
	s->realtime_offset = 0; /* ts is the capture's wall clock already */
	push_info(L, s, &o, "");
	lua_pushvalue(L, 2);
	lua_setfield(L, -2, "file");
	lua_setiuservalue(L, 5, UV_INFO);
	lua_pushvalue(L, 5);
	return 1;
}

/* ---- close ---------------------------------------------------------------- */

/* Flush and close the dump file: 0 or -errno of its first write or close
 * error, with why ("writing PATH failed: ...; N packets written to it"). */
static int dump_stop_why(struct ti_session *s, char *why, size_t whylen)
{
	int err = 0;

	if (s->dump) {
		err = ti_pcap_writer_close(s->dump);
		if (err && why)
			ti_pcap_writer_why(s->dump, err, why, whylen);
		free(s->dump);
		s->dump = NULL;
	}
	return err;
}

static int dump_stop(struct ti_session *s)
{
	return dump_stop_why(s, NULL, 0);
}

/* After a poll: the dump file's first write error, if any, closes it and
 * returns the fail tuple (3), else 0. */
static int dump_check(lua_State *L, struct ti_session *s)
{
	char why[512];
	int err;

	if (!s->dump || !ti_pcap_writer_flush(s->dump))
		return 0;
	err = dump_stop_why(s, why, sizeof(why));
	return ti_fail(L, err, "dump: %s", why);
}

static int session_close(lua_State *L)
{
	struct ti_session *s = luaL_checkudata(L, 1, TI_SESSION_MT);
	char why[512];
	int err;

	if (s->state != TI_OPEN) {
		lua_pushboolean(L, 1);
		return 1;
	}
	if (s->L)
		return luaL_error(L,
				  "cannot close a session from inside its own callback; close it after poll returns");
	/* the dump file's last flush: its error is the caller's to know
	 * (close() returns it; __gc and __close have nobody to tell) */
	err = dump_stop_why(s, why, sizeof(why));
	session_close_objects(s);
	if (err)
		return ti_fail(L, err, "dump: %s", why);
	lua_pushboolean(L, 1);
	return 1;
}

/* ---- events --------------------------------------------------------------- */

/* The message handler of callbacks (upvalue 1: the session).  Keeps the
 * traceback in the session; a string error gets it appended (as lua.c
 * shows errors), any other error value is returned unchanged. */
static int msgh(lua_State *L)
{
	luaL_traceback(L, L, NULL, 1);
	lua_pushvalue(L, -1);
	lua_setiuservalue(L, lua_upvalueindex(1), UV_TRACEBACK);
	if (lua_type(L, 1) == LUA_TSTRING) {
		lua_pushvalue(L, 1);
		lua_pushliteral(L, "\n");
		lua_rotate(L, -3, -1); /* msg, "\n", traceback */
		lua_concat(L, 3);
		return 1;
	}
	lua_settop(L, 1);
	return 1;
}

/* A poll delivers records until the ring is empty, its deadline passes or
 * a trapped signal arrives; what is left stays in the ring for the next.
 * CLOCK_MONOTONIC_COARSE costs a few ns a record (vDSO, no syscall); its
 * tick (1-4 ms) is nothing beside the poll's bound. */
static bool poll_should_stop(const struct ti_session *s)
{
	struct timespec ts;

	if (ti_signal_count != s->signals)
		return true;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9 >= s->deadline;
}

/* A delivered record into the dump file: the event and the e->caplen bytes
 * that follow it (never more than the record holds), the segment's length
 * from the record (e->wirelen), as the ring and the replay fill them. */
static void dump_record(struct ti_session *s, const void *data, size_t size)
{
	const struct ti_event *e = data;
	uint32_t caplen = e->caplen;

	if (caplen > size - sizeof(*e))
		caplen = (uint32_t)(size - sizeof(*e));
	ti_pcap_writer_write(s->dump, e, (const uint8_t *)data + sizeof(*e), caplen, e->wirelen);
}

/* A drop record, in the view: to the on_drop callback (fetched per drop:
 * drops are rare next to segments, and on_drop from a callback takes
 * effect at the next drop), never to the dump (it holds what arrived, and
 * the segment has been there already when a receive hook saw it).
 * Stack as on_sample's. */
static int on_drop_record(struct ti_session *s)
{
	lua_State *L = s->L;
	int base = lua_gettop(L) - 3;

	s->delivered++;
	if (lua_getiuservalue(L, 1, UV_DROP) != LUA_TFUNCTION) {
		lua_pop(L, 1);
		return poll_should_stop(s) ? -ETIME : 0;
	}
	ti_packet_set_valid(s->view, true, s->realtime_offset);
	if (s->drop_nargs) {
		for (int i = 0; i < s->drop_nargs; i++)
			ti_packet_push_field(L, s->view, s->drop_args[i]);
	} else {
		lua_pushvalue(L, base + 3);
	}
	if (lua_pcall(L, s->drop_nargs ? s->drop_nargs : 1, 0, base + 1) != LUA_OK) {
		ti_packet_set_valid(s->view, false, 0);
		s->cb_error = 1;
		return -ECANCELED;
	}
	ti_packet_set_valid(s->view, false, 0);
	return s->stop || poll_should_stop(s) ? -ETIME : 0;
}

/* An ended connection to the on_conn callback (fetched per connection,
 * as on_drop's).  Stack as on_sample's. */
static int on_conn_ended(void *ctx, const struct ti_conn_key *key, const struct ti_conn *c)
{
	struct ti_session *s = ctx;
	lua_State *L = s->L;
	int base = lua_gettop(L) - 3;

	s->delivered++;
	if (lua_getiuservalue(L, 1, UV_CONN) != LUA_TFUNCTION) {
		lua_pop(L, 1);
		return 0;
	}
	ti_conn_push(L, key, c, s->realtime_offset);
	if (lua_pcall(L, 1, 0, base + 1) != LUA_OK) {
		s->cb_error = 1;
		return -ECANCELED;
	}
	return s->stop ? -ETIME : 0;
}

static bool is_conn_record(const void *data, size_t size)
{
	return size >= sizeof(struct ti_event) && ((const struct ti_event *)data)->probe == TI_PROBE_CONN;
}

/* A conn-end record (a RST ended it on the path). */
static int on_conn_record(struct ti_session *s, const void *data, size_t size)
{
	struct ti_conn_key key;
	struct ti_conn c;

	if (ti_conn_record(data, size, &key, &c))
		return 0;
	if (on_conn_ended(s, &key, &c) < 0)
		return s->cb_error ? -ECANCELED : -ETIME;
	return poll_should_stop(s) ? -ETIME : 0;
}

/* on_packet(file): the record's p.line and a newline, written to the Lua
 * file f from C (no Lua call per segment); a closed file or a failed write
 * stops the poll as an error raised in a callback would. */
static int write_line(struct ti_session *s, luaL_Stream *f)
{
	char line[TI_PACKET_LINE_MAX + 1];
	size_t n;

	if (!f->closef) {
		ti_packet_set_valid(s->view, false, 0);
		lua_pushliteral(s->L, "tcpinspect: on_packet: the file is closed");
		s->cb_error = 1;
		return -ECANCELED;
	}
	n = ti_packet_line(s->view, line);
	ti_packet_set_valid(s->view, false, 0);
	line[n++] = '\n';
	if (fwrite_unlocked(line, 1, n, f->f) != n) { /* one thread: Lua's own */
		lua_pushfstring(s->L, "tcpinspect: on_packet: writing a line failed: %s", strerror(errno));
		s->cb_error = 1;
		return -ECANCELED;
	}
	return s->stop || poll_should_stop(s) ? -ETIME : 0;
}

/* A record to the callbacks (and the dump file).
 * Stack during a poll: [base+1] message handler, [base+2] callback, [base+3] view. */
static int deliver(void *ctx, const void *data, size_t size)
{
	struct ti_session *s = ctx;
	lua_State *L = s->L;
	int base = lua_gettop(L) - 3;

	if (is_conn_record(data, size))
		return on_conn_record(s, data, size);
	if (ti_packet_set_record(s->view, data, size))
		return 0; /* not one of ours: skip it */
	if (ti_packet_event(s->view)->probe == TI_PROBE_KFREE_SKB)
		return on_drop_record(s);
	if (s->cb_changed) {
		/* on_packet was called from the callback before: from this
		 * record on, the new function with its own fields (s->args) */
		lua_getiuservalue(L, 1, UV_CALLBACK);
		lua_replace(L, base + 2);
		s->cb_changed = false;
	}
	s->delivered++;
	if (s->dump) /* from the view: a compact record made whole */
		dump_record(s, ti_packet_event(s->view), sizeof(struct ti_event) + ti_packet_event(s->view)->caplen);
	if (lua_isnil(L, base + 2))
		return poll_should_stop(s) ? -ETIME : 0;
	ti_packet_set_valid(s->view, true, s->realtime_offset);
	if (s->to_file)
		return write_line(s, lua_touserdata(L, base + 2));
	lua_pushvalue(L, base + 2);
	if (s->nargs) {
		/* on_packet(fn, fields): the values, no view and no field lookups */
		for (int i = 0; i < s->nargs; i++)
			ti_packet_push_field(L, s->view, s->args[i]);
	} else {
		lua_pushvalue(L, base + 3);
	}
	if (lua_pcall(L, s->nargs ? s->nargs : 1, 0, base + 1) != LUA_OK) {
		ti_packet_set_valid(s->view, false, 0);
		s->cb_error = 1;
		return -ECANCELED; /* error message stays on the stack */
	}
	ti_packet_set_valid(s->view, false, 0);
	/* stop() from the callback, the deadline or a signal: libbpf has moved
	 * past this record and stops here; the rest stays in the ring */
	return s->stop || poll_should_stop(s) ? -ETIME : 0;
}

/* conns = true: after the records, the walk (kernel_conns.c) ends what is
 * due on the records' clock and hands each to on_conn; a replay at the end
 * of its file ends the rest ("fin" or "open"), once, and so does a live
 * session asked to by end_conns.  0 or -errno. */
static int conns_walk(struct ti_session *s, char *why, size_t whylen)
{
	struct ti_kernel_info info;
	int n;

	ti_kernel_describe(s->k, &info);
	n = ti_kernel_conns_expire(s->k, info.clock, false, on_conn_ended, s);
	if (n >= 0 && ((info.capture_clock && info.ended) || s->conns_final) && !s->conns_flushed && !s->cb_error &&
	    !s->stop) {
		n = ti_kernel_conns_expire(s->k, info.clock, true, on_conn_ended, s);
		if (n >= 0 && !s->cb_error)
			s->conns_flushed = true;
	}
	if (n < 0 && n != -ECANCELED) {
		snprintf(why, whylen, "walking the connections table failed: %s", strerror(-n));
		return n;
	}
	return 0;
}

/* A record from the ring (or the replay): into the recorder's window, if
 * any, then delivered. */
static int on_sample(void *ctx, const void *data, size_t size)
{
	struct ti_session *s = ctx;

	if (!s->events && !is_conn_record(data, size))
		return 0; /* events = false: a replay's records are counted, not delivered */
	if (s->rec)
		ti_recorder_push(s->rec, data, size, true);
	return deliver(s, data, size);
}

/* Delivery in a poll with no timeout of its own (0 or -1) stops after this
 * long, so that a flood cannot keep poll from returning. */
#define TI_POLL_SLICE 0.05

/* Before a poll delivers: the message handler, the callback and the view on
 * the stack (on_sample's slots), the per-poll state reset, delivery ending
 * `slice` seconds from now.  Returns the stack top to restore. */
static int delivery_begin(lua_State *L, struct ti_session *s, double slice)
{
	lua_settop(L, 1);
	lua_getiuservalue(L, 1, UV_MSGH);
	lua_getiuservalue(L, 1, UV_CALLBACK);
	lua_getiuservalue(L, 1, UV_VIEW);
	s->L = L;
	s->cb_error = 0;
	s->delivered = 0;
	s->stop = false;
	s->cb_changed = false;
	s->signals = ti_signal_count;
	s->deadline = ti_now_monotonic() + slice;
	return lua_gettop(L);
}

/* session:poll([timeout_ms]) -> number of events delivered.
 * Waits up to timeout_ms (default 0; -1 forever) for a wakeup, then delivers
 * what is pending, including records committed without a wakeup (batched),
 * until none is left, timeout_ms have passed since the call (50 ms for 0
 * and -1) or a trapped signal arrives.  So it returns within about its
 * timeout plus one callback however fast records come.  On a replay the
 * timeout is capture time (ti_kernel_consume): the records of the frames
 * stamped up to timeout_ms after the session's clock (-1: to the end of the
 * file), delivered within TI_POLL_SLICE of real time at a time. */
static int session_poll(lua_State *L)
{
	struct ti_session *s = check_session(L, 1);
	lua_Integer timeout = luaL_optinteger(L, 2, 0);
	struct ti_kernel_info info;
	char why[512];
	int n, top;

	ti_kernel_describe(s->k, &info);
	/* a capture's wait is capture time, which the clock jumps across: any
	 * length (the clock saturates at 2^64 ns) */
	if (timeout < -1 || (timeout > 0x7fffffff && !info.capture_clock))
		return luaL_error(L, "tcpinspect: poll: timeout %I ms out of range", timeout);
	if (s->L)
		return luaL_error(L, "poll called from inside a callback of the same session");
	/* news that came while nobody waited: at once (a poll that waits
	 * learns of it from its wait, one syscall less per poll) */
	if (timeout == 0 || ti_recorder_has_pending(s->rec))
		session_wait(s, 0);
	top = delivery_begin(L, s, timeout > 0 && !info.capture_clock ? (double)timeout / 1000 : TI_POLL_SLICE);
	/* records a recorder's dump drained from the ring come first */
	if (ti_recorder_has_pending(s->rec) && ti_recorder_pending(s->rec, deliver, s) < 0)
		n = 1; /* stopped: the ring waits for the next poll */
	else
		n = timeout != 0 ? session_wait(s, timeout) : 0;
	if (n == 0 || n == -EINTR)
		n = ti_kernel_consume(s->k, timeout, on_sample, s, why, sizeof(why));
	else if (n == 1)
		n = 0;
	else
		snprintf(why, sizeof(why), "reading the ring buffer failed: %s", strerror(-n));
	if (n >= 0 && s->conns && !s->cb_error && !s->stop)
		n = conns_walk(s, why, sizeof(why));
	s->L = NULL;
	s->stop = false;
	if (s->cb_error) {
		/* re-raise from here: the consumer has returned and moved past it */
		return lua_error(L);
	}
	lua_settop(L, top);
	if (n < 0)
		return ti_fail(L, n, "%s", why);
	if ((n = dump_check(L, s)))
		return n;
	lua_pushinteger(L, s->delivered);
	return 1;
}

/* The fields argument of on_packet and on_drop at idx (none or nil: 0):
 * their indexes into args; raises naming "fields". */
static int check_fields(lua_State *L, int idx, uint8_t args[TI_MAX_ARGS])
{
	lua_Integer n;
	int nargs = 0;

	if (lua_isnoneornil(L, idx))
		return 0;
	if (!lua_istable(L, idx))
		ti_option_error(L, "fields", "expected a list of packet field names, got %s", luaL_typename(L, idx));
	n = luaL_len(L, idx);
	if (n < 1 || n > TI_MAX_ARGS)
		ti_option_error(L, "fields", "%I fields: give 1 to %d", n, TI_MAX_ARGS);
	for (lua_Integer i = 1; i <= n; i++) {
		int f;

		lua_geti(L, idx, i);
		f = lua_type(L, -1) == LUA_TSTRING ? ti_packet_field_index(lua_tostring(L, -1)) : -1;
		if (f < 0)
			ti_option_error(L, "fields", "'%s' is not a packet field (see tcpinspect.packet_fields())",
					luaL_tolstring(L, -1, NULL));
		args[nargs++] = (uint8_t)f;
		lua_pop(L, 1);
	}
	return nargs;
}

/* session:on_packet(fn | nil [, fields]) -> session.  With a list of field
 * names, fn receives those fields' values as its arguments instead of the
 * packet view: fn(sport, len, flags) for {"sport", "len", "flags"}. */
static int session_on_packet(lua_State *L)
{
	struct ti_session *s = check_session(L, 1);
	uint8_t args[TI_MAX_ARGS];
	int nargs;

	bool to_file = luaL_testudata(L, 2, LUA_FILEHANDLE) != NULL;

	if (!lua_isnoneornil(L, 2)) {
		if (!to_file && !lua_isfunction(L, 2))
			luaL_typeerror(L, 2, "function or file");
		if (!s->events)
			return luaL_error(L, "tcpinspect: on_packet: this session was opened with events = false, "
					     "so no packet will be delivered; open it with events = true");
	}
	nargs = check_fields(L, 3, args);
	/* a file takes the lines: fields, if given, are {"line"} */
	if (to_file && nargs && (nargs > 1 || args[0] != ti_packet_field_index("line")))
		ti_option_error(L, "fields", "a file takes each segment's line: give no fields, or {\"line\"}");
	if (to_file && !((luaL_Stream *)lua_touserdata(L, 2))->closef)
		luaL_argerror(L, 2, "the file is closed");
	s->to_file = to_file;
	/* from a callback of this session: the callback running keeps what it
	 * was given; the next record goes to fn with these fields */
	memcpy(s->args, args, sizeof(args));
	s->nargs = nargs;
	if (s->L)
		s->cb_changed = true;
	lua_settop(L, 2);
	lua_setiuservalue(L, 1, UV_CALLBACK);
	lua_settop(L, 1);
	return 1;
}

/* session:on_drop(fn | nil [, fields]) -> session: fn(p) for each drop of
 * an incoming segment that the filter matches (p.reason, p.location and
 * the packet fields), or fn(values...) of the fields named.  Needs open's
 * drops = true. */
static int session_on_drop(lua_State *L)
{
	struct ti_session *s = check_session(L, 1);
	uint8_t args[TI_MAX_ARGS];
	int nargs;

	if (!lua_isnoneornil(L, 2)) {
		luaL_checktype(L, 2, LUA_TFUNCTION);
		if (!s->drops)
			return ti_usage_error(L, "drops",
					      "on_drop: this session was opened without drops = true, so no drop "
					      "will be delivered; open it with drops = true");
		if (!s->events)
			return luaL_error(L, "tcpinspect: on_drop: this session was opened with events = false, "
					     "so no drop will be delivered; open it with events = true");
	}
	nargs = check_fields(L, 3, args);
	memcpy(s->drop_args, args, sizeof(args));
	s->drop_nargs = nargs;
	lua_settop(L, 2);
	lua_setiuservalue(L, 1, UV_DROP);
	lua_settop(L, 1);
	return 1;
}

/* session:on_conn(fn | nil) -> session: fn(conn) once for each connection
 * that ends (tcpinspect.conn: conn.c).  Needs open's conns = true. */
/* s:end_conns() -> session | nil, message, errno: the records still in
 * the ring first, then every open connection ended now as a replay's end
 * of file ends them ("fin" if a FIN came, else "open"), each to on_conn:
 * what a session that stops leaves open (Zeek logs the rest at exit). */
static int session_end_conns(lua_State *L)
{
	struct ti_session *s = check_session(L, 1);

	if (!s->conns)
		return ti_usage_error(L, "conns", "end_conns: this session was opened without conns = true");
	s->conns_final = true;
	lua_settop(L, 1);
	lua_pushinteger(L, 0);
	return session_poll(L);
}

static int session_on_conn(lua_State *L)
{
	struct ti_session *s = check_session(L, 1);

	if (!lua_isnoneornil(L, 2)) {
		luaL_checktype(L, 2, LUA_TFUNCTION);
		if (!s->conns)
			return ti_usage_error(L, "conns",
					      "on_conn: this session was opened without conns = true, so no connection "
					      "is tracked; open it with conns = true");
	}
	lua_settop(L, 2);
	lua_setiuservalue(L, 1, UV_CONN);
	lua_settop(L, 1);
	return 1;
}

static int push_conn_list(void *ctx, const struct ti_conn_key *key, const struct ti_conn *c)
{
	lua_State *L = ctx;

	ti_conn_push(L, key, c, lua_tonumber(L, -2));
	lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
	return 0;
}

static int conns_iter(lua_State *L)
{
	lua_Integer i = lua_tointeger(L, lua_upvalueindex(2)) + 1;

	lua_pushinteger(L, i);
	lua_replace(L, lua_upvalueindex(2));
	lua_rawgeti(L, lua_upvalueindex(1), i);
	return 1;
}

/* session:conns() -> iterator over the connections open now (tcpinspect.conn
 * copies, end_reason "open"), in the table's order.  Needs conns = true. */
static int session_conns(lua_State *L)
{
	struct ti_session *s = check_session(L, 1);
	int err;

	if (!s->conns)
		return ti_usage_error(L, "conns",
				      "conns(): this session was opened without conns = true, so no connection is "
				      "tracked; open it with conns = true");
	lua_pushnumber(L, s->realtime_offset); /* push_conn_list's -2 */
	lua_newtable(L);
	err = ti_kernel_conns_each(s->k, push_conn_list, L);
	if (err)
		return ti_fail(L, err, "reading the connections table failed: %s", strerror(-err));
	lua_pushinteger(L, 0);
	lua_pushcclosure(L, conns_iter, 2);
	return 1;
}

/* session:stop() (the C half; lua/tcpinspect.lua adds the run loop's):
 * inside a callback, delivery ends after that callback. */
static int session_stop(lua_State *L)
{
	struct ti_session *s = luaL_checkudata(L, 1, TI_SESSION_MT);

	if (s->L)
		s->stop = true;
	return 0;
}

/* session:now() -> seconds on the session's clock, the clock of p.ts:
 * CLOCK_MONOTONIC, or for a replay the capture's time (the epoch's). */
static int session_now(lua_State *L)
{
	struct ti_session *s = check_session(L, 1);
	struct ti_kernel_info info;

	ti_kernel_describe(s->k, &info);
	lua_pushnumber(L, (double)info.clock / 1e9);
	return 1;
}

/* session:dump(path | nil) -> session: write every record delivered from
 * now on to a pcap file (LINKTYPE_LINUX_SLL2, "-": stdout), the captured
 * bytes of each; nil (or false) flushes and closes it.  A new path closes
 * the previous file first. */
static int session_dump(lua_State *L)
{
	struct ti_session *s = check_session(L, 1);
	struct ti_pcap_writer *w;
	const char *path;
	char why[512];
	int err;

	if (lua_isnoneornil(L, 2) || (lua_isboolean(L, 2) && !lua_toboolean(L, 2))) {
		if ((err = dump_stop_why(s, why, sizeof(why))))
			return ti_fail(L, err, "dump: %s", why);
		lua_settop(L, 1);
		return 1;
	}
	if (lua_type(L, 2) != LUA_TSTRING)
		ti_option_error(L, "path", "expected a file name (\"-\": stdout) or nil, got %s", luaL_typename(L, 2));
	path = lua_tostring(L, 2);
	if (strlen(path) != lua_rawlen(L, 2) || !*path)
		ti_option_error(L, "path", "an empty path or one holding a NUL byte");
	if (!s->events)
		return luaL_error(L, "tcpinspect: dump: this session was opened with events = false, "
				     "so no packet will be delivered; open it with events = true");
	if ((err = dump_stop_why(s, why, sizeof(why))))
		return ti_fail(L, err, "dump: %s", why);
	w = malloc(sizeof(*w));
	if (!w)
		return ti_fail(L, -ENOMEM, "dump: out of memory");
	err = ti_pcap_writer_open(w, path, 65535, (int64_t)(s->realtime_offset * 1e9), why, sizeof(why));
	if (err) {
		free(w);
		return ti_fail(L, err, "dump: %s", why);
	}
	s->dump = w;
	lua_settop(L, 1);
	return 1;
}

static int session_fd(lua_State *L)
{
	struct ti_session *s = check_session(L, 1);
	struct ti_kernel_info info;

	ti_kernel_describe(s->k, &info);
	lua_pushinteger(L, info.fd);
	return 1;
}

/* ---- filter, stats, maps ---------------------------------------------------- */

static int session_set_filter(lua_State *L)
{
	struct ti_session *s = check_session(L, 1);
	struct ti_filter *f = lua_newuserdatauv(L, sizeof(*f), 0);
	int err;

	ti_check_filter(L, 2, f, "filter", s->netns_path);
	ti_check_filter_sockets(L, f, s->sockets);
	if ((err = ti_kernel_set_filter(s->k, f)))
		return ti_fail(L, err, "writing the filter failed: %s", strerror(-err));
	lua_settop(L, 1);
	return 1;
}

static const char *const drop_stat_names[] = {
#define TI_X(id, name) name,
	TI_DROP_STATS(TI_X)
#undef TI_X
};

/* stats().drops, with drops = true where the drop hook runs: its counters
 * and `reasons`, each reason's count by the kernel's name (a value the
 * BTF does not name, by its number; the last slot, values past it, as
 * "OTHER").  0, or ti_fail's count of results. */
static int push_drop_stats(lua_State *L, struct ti_session *s)
{
	uint64_t v[TI_DROP_CTR_SLOTS];
	char why[300];
	int err = ti_kernel_drop_stats(s->k, v, why, sizeof(why));

	if (err == -EOPNOTSUPP)
		return 0; /* no drop hook: no drops table (session.probes says why) */
	if (err)
		return ti_fail(L, err, "reading the drop counters failed: %s", strerror(-err));
	lua_createtable(L, 0, TI_DROP_STAT_MAX + 1);
	for (int i = 0; i < TI_DROP_STAT_MAX; i++) {
		lua_pushinteger(L, (lua_Integer)v[TI_DROP_REASON_SLOTS + i]);
		lua_setfield(L, -2, drop_stat_names[i]);
	}
	lua_newtable(L);
	for (uint32_t r = 0; r < TI_DROP_REASON_SLOTS; r++) {
		const char *name = ti_drop_reason_name(r);

		if (!v[r])
			continue;
		if (r == TI_DROP_REASON_SLOTS - 1)
			lua_pushliteral(L, "OTHER");
		else if (name)
			lua_pushstring(L, name);
		else
			lua_pushfstring(L, "%d", (int)r);
		lua_pushinteger(L, (lua_Integer)v[r]);
		lua_settable(L, -3);
	}
	lua_setfield(L, -2, "reasons");
	lua_setfield(L, -2, "drops");
	return 0;
}

static int session_stats(lua_State *L)
{
	struct ti_session *s = check_session(L, 1);
	uint64_t v[TI_STAT_MAX];
	int err = ti_kernel_stats(s->k, v);

	if (err)
		return ti_fail(L, err, "reading stats failed: %s", strerror(-err));
	lua_createtable(L, 0, TI_STAT_MAX + 1);
	for (int i = 0; i < TI_STAT_MAX; i++) {
		/* the connections' counters with conns = true only */
		if (!s->conns && i >= TI_STAT_CONNS_OPENED && i <= TI_STAT_CONNS_EVICTED)
			continue;
		lua_pushinteger(L, (lua_Integer)v[i]);
		lua_setfield(L, -2, ti_stat_names[i]);
	}
	if (s->drops && (err = push_drop_stats(L, s)))
		return err;
	return 1;
}

/* session:traceback() -> the traceback of the last error raised in a
 * callback of this session, or nil. */
static int session_traceback(lua_State *L)
{
	luaL_checkudata(L, 1, TI_SESSION_MT);
	lua_getiuservalue(L, 1, UV_TRACEBACK);
	return 1;
}

static int session_map(lua_State *L)
{
	check_session(L, 1);
	return ti_map_new(L, 1, luaL_checkstring(L, 2));
}

/* session:test_run(frame, [repeat]) -> retval, ns per run
 * Runs the session's tc or cgroup program on an Ethernet frame with
 * BPF_PROG_TEST_RUN, through the same parse/filter/aggregate/emit path as
 * live traffic.  For specs and benchmarks (make bench). */
static int session_test_run(lua_State *L)
{
	struct ti_session *s = check_session(L, 1);
	size_t n;
	const char *frame = luaL_checklstring(L, 2, &n);
	lua_Integer repeat = luaL_optinteger(L, 3, 1);
	int retval, err;
	uint32_t ns;
	char why[256];

	if (repeat < 1 || repeat > 0x7fffffff)
		return luaL_error(L, "tcpinspect: test_run: repeat %I out of range", repeat);
	err = ti_kernel_test_run(s->k, frame, n, (int)repeat, &retval, &ns, why, sizeof(why));
	if (err == -EOPNOTSUPP)
		return luaL_error(L, "tcpinspect: %s", why);
	if (err)
		return ti_fail(L, err, "%s", why);
	lua_pushinteger(L, retval);
	lua_pushinteger(L, ns);
	return 2;
}

static int session_index(lua_State *L)
{
	luaL_checkudata(L, 1, TI_SESSION_MT);
	/* the documented fields (session.events is the boolean), then methods */
	if (lua_type(L, 2) == LUA_TSTRING) {
		const char *k = lua_tostring(L, 2);

		for (int i = 0; ti_session_fields[i]; i++) {
			if (strcmp(k, ti_session_fields[i]))
				continue;
			if (!strcmp(k, "closed")) {
				lua_pushboolean(L, ((struct ti_session *)lua_touserdata(L, 1))->state != TI_OPEN);
				return 1;
			}
			if (!strcmp(k, "ended")) {
				/* a replay that has handled every frame of its file */
				const struct ti_session *s = lua_touserdata(L, 1);
				struct ti_kernel_info info;

				if (s->state == TI_OPEN)
					ti_kernel_describe(s->k, &info);
				lua_pushboolean(L, s->state == TI_OPEN && info.ended);
				return 1;
			}
			if (!strcmp(k, "next_ts")) {
				/* a replay's next frame, seconds on session:now()'s clock */
				const struct ti_session *s = lua_touserdata(L, 1);
				struct ti_kernel_info info;

				if (s->state == TI_OPEN)
					ti_kernel_describe(s->k, &info);
				lua_pushnumber(L, s->state != TI_OPEN || !info.next_known ? HUGE_VAL
											  : (double)info.next_ts / 1e9);
				return 1;
			}
			lua_getiuservalue(L, 1, UV_INFO);
			if (!lua_istable(L, -1))
				return 0;
			if (!strcmp(k, "probes") && ((struct ti_session *)lua_touserdata(L, 1))->probes_changed) {
				struct ti_session *s = lua_touserdata(L, 1);

				/* the link monitor changed the tc attachments */
				push_probes(L, s);
				lua_setfield(L, -2, "probes");
				s->probes_changed = false;
			}
			lua_getfield(L, -1, k);
			return 1;
		}
	}
	lua_getmetatable(L, 1);
	lua_getfield(L, -1, "__methods");
	lua_pushvalue(L, 2);
	lua_rawget(L, -2);
	return 1; /* the method, or nil */
}

static int session_tostring(lua_State *L)
{
	struct ti_session *s = luaL_checkudata(L, 1, TI_SESSION_MT);

	if (s->state != TI_OPEN)
		lua_pushliteral(L, "tcpinspect.session (closed)");
	else {
		struct ti_kernel_info info;

		ti_kernel_describe(s->k, &info);
		lua_pushfstring(L, "tcpinspect.session (%s)", info.mode);
	}
	return 1;
}

void ti_session_register(lua_State *L)
{
	static const luaL_Reg meta[] = {
		{ "__index", session_index },
		{ "__gc", session_close },
		{ "__close", session_close },
		{ "__tostring", session_tostring },
		{ NULL, NULL },
	};
	static const luaL_Reg methods[] = {
		{ "close", session_close },
		{ "poll", session_poll },
		{ "on_packet", session_on_packet },
		{ "on_drop", session_on_drop },
		{ "fd", session_fd },
		{ "set_filter", session_set_filter },
		{ "stats", session_stats },
		{ "map", session_map },
		{ "test_run", session_test_run },
		{ "traceback", session_traceback },
		{ "stop", session_stop },
		{ "now", session_now },
		{ "dump", session_dump },
		{ "on_conn", session_on_conn },
		{ "conns", session_conns },
		{ "end_conns", session_end_conns },
		{ "recorder", ti_recorder_new },
		{ NULL, NULL },
	};

	luaL_newmetatable(L, TI_SESSION_MT);
	luaL_setfuncs(L, meta, 0);
	luaL_newlib(L, methods);
	lua_setfield(L, -2, "__methods");
	lua_pop(L, 1);
}
