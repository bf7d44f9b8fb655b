/* session.c: the tcpinspect.session class.
 *
 * open() checks every option (raising on mistakes), then tries the modes in
 * order (auto: fentry, kprobe, tc, cgroup) until one loads and attaches; an
 * environment failure returns nil, message, errno.  The session's user
 * values hold the callback (1), the reused packet view (2) and the info
 * table behind session.mode/.probes/.fallback_reason (3).
 *
 * Events: the ring callback copies each record into the view and calls the
 * Lua function under lua_pcall with a traceback handler.  An error stops the
 * ring consumer with a negative return (libbpf has already moved past that
 * record, so nothing is redelivered) and is raised again once the consumer
 * has returned, from a safe frame.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "ti.h"
#include "tcpinspect.skel.h"

#define UV_CALLBACK 1
#define UV_VIEW 2
#define UV_INFO 3

const char *const ti_stat_names[TI_STAT_MAX + 1] = {
	"seen", "filtered", "matched", "sampled_out", "delivered", "dropped", "errors", NULL,
};

/* The fields of session.X besides the methods (push_info, session_index). */
const char *const ti_session_fields[] = {
	"mode", "fallback_reason", "probes", "ring_size", "events", "sample", "closed", NULL,
};

static struct ti_session *check_session(lua_State *L, int idx)
{
	struct ti_session *s = luaL_checkudata(L, idx, TI_SESSION_MT);

	if (s->state != TI_OPEN)
		luaL_error(L, "attempt to use a closed session");
	return s;
}

/* ---- configuration -------------------------------------------------------- */

void ti_base_config(struct ti_config *c, const struct ti_options *o)
{
	memset(c, 0, sizeof(*c));
	c->sample = o->sample;
	c->events = o->events;
	c->aggregates = o->aggregates;
	c->wakeup_bytes = o->wakeup * (sizeof(struct ti_event) + 8 /* ring header */);
	if (c->wakeup_bytes > o->ring_size / 2)
		c->wakeup_bytes = o->ring_size / 2;
	if (o->family) {
		c->match = TI_M_FAMILY;
		c->family = (uint32_t)o->family;
	}
}

static int lpm_write(int fd, uint8_t slot, const struct ti_cidr *c, int n, bool del)
{
	uint8_t one = 1;

	for (int i = 0; i < n; i++) {
		struct ti_lpm_key k = { .prefixlen = 16u + c[i].plen, .slot = slot, .family = c[i].family };

		memcpy(k.addr, c[i].addr, 16);
		if (del)
			bpf_map_delete_elem(fd, &k);
		else if (bpf_map_update_elem(fd, &k, &one, BPF_ANY))
			return -errno;
	}
	return 0;
}

/* Write f (NULL: match everything) into the idle slot, then make it the
 * active one.  The kernel sees either the old or the new filter, whole. */
int ti_write_filter(struct ti_session *s, const struct ti_filter *f)
{
	struct tcpinspect_bpf *k = s->skel;
	uint8_t slot = (uint8_t)(s->slot ^ 1);
	struct ti_filter *old = s->slot_filter[slot], *copy;
	struct ti_config *c = &k->bss->ti_cfg[slot];
	int sfd = bpf_map__fd(k->maps.saddr_lpm), dfd = bpf_map__fd(k->maps.daddr_lpm);
	int hfd = bpf_map__fd(k->maps.host_lpm);
	int err;

	copy = calloc(1, sizeof(*copy));
	if (!copy)
		return -ENOMEM;
	if (f)
		*copy = *f;
	if (old) {
		lpm_write(sfd, slot, old->saddr, old->nsaddr, true);
		lpm_write(dfd, slot, old->daddr, old->ndaddr, true);
		lpm_write(hfd, slot, old->host, old->nhost, true);
	}
	if ((err = lpm_write(sfd, slot, copy->saddr, copy->nsaddr, false)) ||
	    (err = lpm_write(dfd, slot, copy->daddr, copy->ndaddr, false)) ||
	    (err = lpm_write(hfd, slot, copy->host, copy->nhost, false))) {
		free(copy);
		return err;
	}
	*c = copy->cfg;
	c->match |= s->base.match;
	if (!(copy->cfg.match & TI_M_FAMILY))
		c->family = s->base.family;
	c->sample = s->base.sample;
	c->events = s->base.events;
	c->aggregates = s->base.aggregates;
	c->wakeup_bytes = s->base.wakeup_bytes;
	c->netns = s->base.netns;
	__sync_synchronize();
	k->bss->ti_cfg_slot = slot;
	__sync_synchronize();
	s->slot = slot;
	free(old);
	s->slot_filter[slot] = copy;
	return 0;
}

static int on_sample(void *ctx, void *data, size_t size);

/* ---- open ----------------------------------------------------------------- */

static double realtime_offset(void)
{
	struct timespec rt, mono;

	clock_gettime(CLOCK_REALTIME, &rt);
	clock_gettime(CLOCK_MONOTONIC, &mono);
	return (double)(rt.tv_sec - mono.tv_sec) + (double)(rt.tv_nsec - mono.tv_nsec) / 1e9;
}

static void push_info(lua_State *L, struct ti_session *s, const struct ti_options *o,
		      const char *fallback)
{
	static const char *const fn[2] = { "tcp_v4_rcv", "tcp_v6_rcv" };

	lua_createtable(L, 0, 6);
	lua_pushstring(L, ti_mode_name(s->mode));
	lua_setfield(L, -2, "mode");
	lua_pushstring(L, fallback);
	lua_setfield(L, -2, "fallback_reason");
	lua_newtable(L);
	switch (s->mode) {
	case TI_MODE_FENTRY:
	case TI_MODE_KPROBE:
		for (int i = 0; i < 2; i++) {
			lua_pushstring(L, s->probe_status[i][0] ? s->probe_status[i] : "not requested");
			lua_setfield(L, -2, fn[i]);
		}
		break;
	case TI_MODE_CGROUP:
		lua_pushfstring(L, "attached to %s", s->cgroup_path);
		lua_setfield(L, -2, "cgroup_skb/ingress");
		break;
	case TI_MODE_TC:
		for (int i = 0; i < s->ntc; i++) {
			lua_pushfstring(L, "tc/ingress:%s", s->tc[i].name);
			lua_pushstring(L, s->tc[i].link_fd >= 0 ? "attached (tcx link)"
								: "attached (clsact filter)");
			lua_settable(L, -3);
		}
		break;
	default:
		break;
	}
	lua_setfield(L, -2, "probes");
	lua_pushinteger(L, o->ring_size);
	lua_setfield(L, -2, "ring_size");
	lua_pushboolean(L, o->events);
	lua_setfield(L, -2, "events");
	lua_pushinteger(L, o->sample);
	lua_setfield(L, -2, "sample");
}

int ti_session_open(lua_State *L)
{
	struct ti_options o;
	struct ti_filter *f;
	struct ti_session *s;
	enum ti_mode order[4];
	int norder = 0, err = 0;
	luaL_Buffer reasons;
	char why[1024];

	lua_settop(L, 1);
	ti_check_options(L, 1, &o);
	/* the filter is parsed into a userdata so that an error leaks nothing */
	f = lua_newuserdatauv(L, sizeof(*f), 0); /* 2 */
	lua_getfield(L, 1, "filter");
	ti_check_filter(L, -1, f, "filter");
	lua_pop(L, 1);

	s = lua_newuserdatauv(L, sizeof(*s), 3); /* 3 */
	memset(s, 0, sizeof(*s));
	luaL_setmetatable(L, TI_SESSION_MT);
	s->state = TI_OPEN; /* until the first failure below */
	s->ncpus = libbpf_num_possible_cpus();
	s->realtime_offset = realtime_offset();
	for (int i = 0; i < TI_MAX_DEVS; i++)
		s->tc[i].link_fd = -1;
	s->filter = f;
	ti_base_config(&s->base, &o);

	if (o.mode == TI_MODE_AUTO) {
		order[norder++] = TI_MODE_FENTRY;
		order[norder++] = TI_MODE_KPROBE;
		order[norder++] = TI_MODE_TC;
		order[norder++] = TI_MODE_CGROUP;
	} else {
		order[norder++] = o.mode;
	}
	if (o.mode == TI_MODE_AUTO || o.mode == TI_MODE_TC)
		ti_sweep_stale_tc();

	luaL_buffinit(L, &reasons);
	for (int i = 0; i < norder; i++) {
		memset(s->probe_status, 0, sizeof(s->probe_status));
		err = ti_hooks_attach(s, &o, order[i], why, sizeof(why));
		if (!err)
			break;
		if (i)
			luaL_addstring(&reasons, "\n");
		luaL_addstring(&reasons, why);
	}
	luaL_pushresult(&reasons); /* 4 */
	s->filter = NULL; /* the userdata f dies with this frame */
	if (err) {
		s->state = TI_CLOSED;
		return ti_fail(L, err, "%s", lua_tostring(L, 4));
	}
	if (o.events) {
		s->rb = ring_buffer__new(bpf_map__fd(s->skel->maps.events), on_sample, s, NULL);
		if (!s->rb) {
			err = -errno;
			ti_hooks_detach(s);
			s->state = TI_CLOSED;
			return ti_fail(L, err, "creating the ring buffer reader failed: %s", strerror(-err));
		}
	}
	s->view_rec = ti_packet_new_view(L);
	lua_setiuservalue(L, 3, UV_VIEW);
	push_info(L, s, &o, lua_tostring(L, 4));
	lua_setiuservalue(L, 3, UV_INFO);
	lua_pushvalue(L, 3);
	return 1;
}

/* ---- close ---------------------------------------------------------------- */

static int session_close(lua_State *L)
{
	struct ti_session *s = luaL_checkudata(L, 1, TI_SESSION_MT);

	if (s->state != TI_OPEN)
		return 0;
	if (s->L)
		return luaL_error(L, "cannot close a session from inside its own callback; close it after poll returns");
	s->state = TI_CLOSED;
	if (s->rb) {
		ring_buffer__free(s->rb);
		s->rb = NULL;
	}
	ti_hooks_detach(s);
	return 0;
}

/* ---- events --------------------------------------------------------------- */

static int traceback(lua_State *L)
{
	const char *msg = lua_tostring(L, 1);

	if (!msg)
		msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
	luaL_traceback(L, L, msg, 1);
	return 1;
}

/* Stack during a poll: [base+1] traceback, [base+2] callback, [base+3] view. */
static int on_sample(void *ctx, void *data, size_t size)
{
	struct ti_session *s = ctx;
	lua_State *L = s->L;
	int base = lua_gettop(L) - 3;

	if (size < sizeof(struct ti_event))
		return 0; /* not one of ours: skip it */
	memcpy(s->view_rec, data, sizeof(struct ti_event));
	s->delivered++;
	if (lua_isnil(L, base + 2))
		return 0;
	lua_pushvalue(L, base + 2);
	lua_pushvalue(L, base + 3);
	ti_packet_set_valid(L, base + 3, true, s->realtime_offset);
	if (lua_pcall(L, 1, 0, base + 1) != LUA_OK) {
		ti_packet_set_valid(L, base + 3, false, 0);
		s->cb_error = 1;
		return -ECANCELED; /* error message stays on the stack */
	}
	ti_packet_set_valid(L, base + 3, false, 0);
	return 0;
}

/* session:poll([timeout_ms]) -> number of events delivered.
 * Waits up to timeout_ms (default 0) for a wakeup, then drains everything
 * pending, including records committed without a wakeup (batched). */
static int session_poll(lua_State *L)
{
	struct ti_session *s = check_session(L, 1);
	lua_Integer timeout = luaL_optinteger(L, 2, 0);
	int n, top;

	if (timeout < -1 || timeout > 0x7fffffff)
		return luaL_error(L, "tcpinspect: poll: timeout %I ms out of range", timeout);
	if (s->L)
		return luaL_error(L, "poll called from inside a callback of the same session");
	if (!s->rb) {
		/* events = false: nothing to deliver, just wait */
		if (timeout > 0)
			poll(NULL, 0, (int)timeout);
		lua_pushinteger(L, 0);
		return 1;
	}
	lua_settop(L, 1);
	lua_pushcfunction(L, traceback);
	lua_getiuservalue(L, 1, UV_CALLBACK);
	lua_getiuservalue(L, 1, UV_VIEW);
	top = lua_gettop(L);
	s->L = L;
	s->cb_error = 0;
	s->delivered = 0;
	n = ring_buffer__poll(s->rb, (int)timeout);
	if (n >= 0 || n == -EINTR)
		n = ring_buffer__consume(s->rb);
	s->L = NULL;
	if (s->cb_error) {
		/* re-raise from here: the consumer has returned and moved past it */
		return lua_error(L);
	}
	lua_settop(L, top);
	if (n < 0 && n != -EINTR)
		return ti_fail(L, n, "reading the ring buffer failed: %s", strerror(-n));
	lua_pushinteger(L, s->delivered);
	return 1;
}

static int session_on_packet(lua_State *L)
{
	check_session(L, 1);
	if (!lua_isnoneornil(L, 2))
		luaL_checktype(L, 2, LUA_TFUNCTION);
	lua_settop(L, 2);
	lua_setiuservalue(L, 1, UV_CALLBACK);
	lua_settop(L, 1);
	return 1;
}

static int session_fd(lua_State *L)
{
	struct ti_session *s = check_session(L, 1);

	lua_pushinteger(L, s->rb ? ring_buffer__epoll_fd(s->rb) : -1);
	return 1;
}

/* ---- filter, stats, maps ---------------------------------------------------- */

static int session_set_filter(lua_State *L)
{
	struct ti_session *s = check_session(L, 1);
	struct ti_filter *f = lua_newuserdatauv(L, sizeof(*f), 0);
	int err;

	ti_check_filter(L, 2, f, "filter");
	if ((err = ti_write_filter(s, f)))
		return ti_fail(L, err, "writing the filter failed: %s", strerror(-err));
	lua_settop(L, 1);
	return 1;
}

static int session_stats(lua_State *L)
{
	struct ti_session *s = check_session(L, 1);
	int fd = bpf_map__fd(s->skel->maps.stats);
	uint64_t *vals = lua_newuserdatauv(L, sizeof(uint64_t) * (size_t)s->ncpus, 0);

	/* Read downstream counters first: the kernel counts seen, then filtered
	 * or matched, then the rest, so under live traffic this order keeps
	 * seen >= filtered + matched >= ... instead of the reverse. */
	lua_createtable(L, 0, TI_STAT_MAX);
	for (uint32_t i = TI_STAT_MAX; i-- > 0;) {
		uint64_t sum = 0;

		if (bpf_map_lookup_elem(fd, &i, vals))
			return ti_fail(L, errno, "reading stats failed: %s", strerror(errno));
		for (int c = 0; c < s->ncpus; c++)
			sum += vals[c];
		lua_pushinteger(L, (lua_Integer)sum);
		lua_setfield(L, -2, ti_stat_names[i]);
	}
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
	struct bpf_program *prog;
	DECLARE_LIBBPF_OPTS(bpf_test_run_opts, t, .data_in = frame, .data_size_in = (__u32)n);

	if (repeat < 1 || repeat > 0x7fffffff)
		return luaL_error(L, "tcpinspect: test_run: repeat %I out of range", repeat);
	if (s->mode == TI_MODE_TC)
		prog = s->skel->progs.ti_tc_ingress;
	else if (s->mode == TI_MODE_CGROUP)
		prog = s->skel->progs.ti_cgroup_ingress;
	else
		return luaL_error(L, "tcpinspect: test_run needs a session in tc or cgroup mode, not %s",
				  ti_mode_name(s->mode));
	t.repeat = (int)repeat;
	if (bpf_prog_test_run_opts(bpf_program__fd(prog), &t))
		return ti_fail(L, errno, "BPF_PROG_TEST_RUN failed: %s", strerror(errno));
	lua_pushinteger(L, (int)t.retval);
	lua_pushinteger(L, t.duration);
	return 2;
}

static int session_index(lua_State *L)
{
	luaL_checkudata(L, 1, TI_SESSION_MT);
	/* methods first, then the info fields */
	lua_getmetatable(L, 1);
	lua_getfield(L, -1, "__methods");
	lua_pushvalue(L, 2);
	if (lua_rawget(L, -2) != LUA_TNIL)
		return 1;
	if (lua_type(L, 2) == LUA_TSTRING && !strcmp(lua_tostring(L, 2), "closed")) {
		struct ti_session *s = lua_touserdata(L, 1);

		lua_pushboolean(L, s->state != TI_OPEN);
		return 1;
	}
	lua_getiuservalue(L, 1, UV_INFO);
	if (!lua_istable(L, -1))
		return 0;
	lua_pushvalue(L, 2);
	lua_rawget(L, -2);
	return 1;
}

static int session_tostring(lua_State *L)
{
	struct ti_session *s = luaL_checkudata(L, 1, TI_SESSION_MT);

	if (s->state != TI_OPEN)
		lua_pushliteral(L, "tcpinspect.session (closed)");
	else
		lua_pushfstring(L, "tcpinspect.session (%s)", ti_mode_name(s->mode));
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
		{ "fd", session_fd },
		{ "set_filter", session_set_filter },
		{ "stats", session_stats },
		{ "map", session_map },
		{ "test_run", session_test_run },
		{ NULL, NULL },
	};

	luaL_newmetatable(L, TI_SESSION_MT);
	luaL_setfuncs(L, meta, 0);
	luaL_newlib(L, methods);
	lua_setfield(L, -2, "__methods");
	lua_pop(L, 1);
}
