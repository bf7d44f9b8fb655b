// SPDX-License-Identifier: GPL-2.0-only
/* map.c: the tcpinspect.map class: the in-kernel aggregates, read from Lua.
 *
 *   flows     {family, saddr, daddr, sport, dport} -> {packets, bytes, first_ts, last_ts, flags_seen}
 *   ports     {dport}                              -> {packets, bytes}
 *   sources   {family, saddr}                      -> {packets, bytes, syns}
 *   len_hist  {slot, low, high}                    -> {count}   (per-CPU, summed)
 *   drops     {reason, dport, family, saddr}       -> {packets, bytes, first_ts, last_ts}
 *
 * The kernel layer (kernel_maps.c) reads the maps and merges the CPUs'
 * entries; this file converts keys and values.  pairs() iterates over a
 * snapshot taken when it is called.  A map keeps its session alive through
 * its user value and checks on every call that the session is still open.
 * A syscall failure returns nil, "ENAME: ...", errno; a missing key is nil
 * alone.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include "ti.h"

const char *const ti_map_names[TI_MAP_COUNT + 1] = {
#define TI_X(id, name) name,
	TI_MAPS(TI_X)
#undef TI_X
		NULL,
};

/* open's aggregates bits (kernel.h) are the kernel's (tcpinspect.h) */
_Static_assert(TI_AGG_FLOWS == 1 << TI_MAP_FLOWS && TI_AGG_PORTS == 1 << TI_MAP_PORTS &&
		       TI_AGG_SOURCES == 1 << TI_MAP_SOURCES && TI_AGG_LEN_HIST == 1 << TI_MAP_LEN_HIST &&
		       TI_AGG_DROPS == 1 << TI_MAP_DROPS,
	       "TI_AGG_* follow TI_MAPS");

struct ti_map {
	enum ti_map_id kind;
};

/* Largest key and value, for stack buffers. */
#define MAX_KEY 64
#define MAX_VAL 64

static struct ti_session *map_session(lua_State *L, int idx, struct ti_map **m)
{
	struct ti_session *s;

	*m = luaL_checkudata(L, idx, TI_MAP_MT);
	lua_getiuservalue(L, idx, 1);
	s = lua_touserdata(L, -1);
	lua_pop(L, 1);
	if (!s || s->state != TI_OPEN)
		luaL_error(L, "attempt to use a closed session (map '%s')", ti_map_names[(*m)->kind]);
	return s;
}

/* ---- decoding ---------------------------------------------------------------- */

/* The fields of each map's keys and values (doc/reference.md "Maps").  Key
 * and value tables carry a metatable whose __index raises on any other
 * name, with a suggestion: a typo (v.byte) is an error at the caller's
 * line instead of a nil that fails further on. */
static const char *const key_fields[TI_MAP_COUNT][6] = {
	[TI_MAP_FLOWS] = { "family", "saddr", "daddr", "sport", "dport", NULL },
	[TI_MAP_PORTS] = { "dport", NULL },
	[TI_MAP_SOURCES] = { "family", "saddr", NULL },
	[TI_MAP_LEN_HIST] = { "slot", "low", "high", NULL },
	[TI_MAP_DROPS] = { "reason", "dport", "family", "saddr", NULL },
};
static const char *const value_fields[TI_MAP_COUNT][6] = {
	[TI_MAP_FLOWS] = { "packets", "bytes", "first_ts", "last_ts", "flags_seen", NULL },
	[TI_MAP_PORTS] = { "packets", "bytes", NULL },
	[TI_MAP_SOURCES] = { "packets", "bytes", "syns", NULL },
	[TI_MAP_LEN_HIST] = { "count", NULL },
	[TI_MAP_DROPS] = { "packets", "bytes", "first_ts", "last_ts", NULL },
};

#define ENTRY_MT "tcpinspect.map.%s.%s"

/* __index of key and value tables (upvalues: map name, "key"/"value", the
 * kind, 0 for keys or 1 for values). */
static int entry_index(lua_State *L)
{
	int kind = (int)lua_tointeger(L, lua_upvalueindex(3));
	const char *const *names = lua_tointeger(L, lua_upvalueindex(4)) ? value_fields[kind] : key_fields[kind];

	if (lua_type(L, 2) != LUA_TSTRING)
		return luaL_error(L, "tcpinspect: map '%s' %s fields are names, got a %s key",
				  lua_tostring(L, lua_upvalueindex(1)), lua_tostring(L, lua_upvalueindex(2)),
				  luaL_typename(L, 2));
	return luaL_error(L, "tcpinspect: map '%s' %s has no field '%s'%s (fields: %s)",
			  lua_tostring(L, lua_upvalueindex(1)), lua_tostring(L, lua_upvalueindex(2)),
			  lua_tostring(L, 2), ti_push_suggestion(L, lua_tostring(L, 2), names), ti_push_list(L, names));
}

static void register_entry_mts(lua_State *L)
{
	for (int kind = 0; kind < TI_MAP_COUNT; kind++) {
		for (int part = 0; part < 2; part++) {
			const char *what = part ? "value" : "key";

			lua_pushfstring(L, ENTRY_MT, ti_map_names[kind], what);
			luaL_newmetatable(L, lua_tostring(L, -1));
			lua_pushstring(L, ti_map_names[kind]);
			lua_pushstring(L, what);
			lua_pushinteger(L, kind);
			lua_pushinteger(L, part);
			lua_pushcclosure(L, entry_index, 4);
			lua_setfield(L, -2, "__index");
			lua_pop(L, 2);
		}
	}
}

static void set_entry_mt(lua_State *L, enum ti_map_id kind, const char *what)
{
	luaL_getmetatable(L, lua_pushfstring(L, ENTRY_MT, ti_map_names[kind], what));
	lua_remove(L, -2);
	lua_setmetatable(L, -2);
}

static void set_int(lua_State *L, const char *k, uint64_t v)
{
	lua_pushinteger(L, (lua_Integer)v);
	lua_setfield(L, -2, k);
}

static void push_key(lua_State *L, enum ti_map_id kind, const void *key)
{
	lua_createtable(L, 0, 5);
	switch (kind) {
	case TI_MAP_FLOWS: {
		const struct ti_flow_key *k = key;

		set_int(L, "family", k->family);
		ti_push_addr(L, k->family, k->saddr);
		lua_setfield(L, -2, "saddr");
		ti_push_addr(L, k->family, k->daddr);
		lua_setfield(L, -2, "daddr");
		set_int(L, "sport", k->sport);
		set_int(L, "dport", k->dport);
		break;
	}
	case TI_MAP_PORTS: set_int(L, "dport", *(const uint64_t *)key); break;
	case TI_MAP_SOURCES: {
		const struct ti_addr_key *k = key;

		set_int(L, "family", k->family);
		ti_push_addr(L, k->family, k->addr);
		lua_setfield(L, -2, "saddr");
		break;
	}
	case TI_MAP_LEN_HIST: {
		uint32_t slot = (uint32_t) * (const uint64_t *)key;

		set_int(L, "slot", slot);
		set_int(L, "low", slot ? (lua_Integer)1 << (slot - 1) : 0);
		set_int(L, "high", slot ? ((lua_Integer)1 << slot) - 1 : 0);
		break;
	}
	case TI_MAP_DROPS: {
		const struct ti_drop_key *k = key;
		const char *name = ti_drop_reason_name(k->reason);

		/* as p.reason: the kernel's name, its number where none */
		if (name)
			lua_pushstring(L, name);
		else
			lua_pushfstring(L, "%d", (int)k->reason);
		lua_setfield(L, -2, "reason");
		set_int(L, "dport", k->dport);
		set_int(L, "family", k->family);
		ti_push_addr(L, k->family, k->saddr);
		lua_setfield(L, -2, "saddr");
		break;
	}
	default: break;
	}
	set_entry_mt(L, kind, "key");
}

static void push_value(lua_State *L, enum ti_map_id kind, const void *val)
{
	lua_createtable(L, 0, 5);
	switch (kind) {
	case TI_MAP_FLOWS: {
		const struct ti_flow_val *v = val;

		set_int(L, "packets", v->packets);
		set_int(L, "bytes", v->bytes);
		set_int(L, "first_ts", v->first_ts);
		set_int(L, "last_ts", v->last_ts);
		set_int(L, "flags_seen", v->flags_seen);
		break;
	}
	case TI_MAP_PORTS: {
		const struct ti_port_val *v = val;

		set_int(L, "packets", v->packets);
		set_int(L, "bytes", v->bytes);
		break;
	}
	case TI_MAP_SOURCES: {
		const struct ti_source_val *v = val;

		set_int(L, "packets", v->packets);
		set_int(L, "bytes", v->bytes);
		set_int(L, "syns", v->syns);
		break;
	}
	case TI_MAP_LEN_HIST: set_int(L, "count", *(const uint64_t *)val); break;
	case TI_MAP_DROPS: {
		const struct ti_drop_val *v = val;

		set_int(L, "packets", v->packets);
		set_int(L, "bytes", v->bytes);
		set_int(L, "first_ts", v->first_ts);
		set_int(L, "last_ts", v->last_ts);
		break;
	}
	default: break;
	}
	set_entry_mt(L, kind, "value");
}

/* ---- encoding keys from Lua ------------------------------------------------ */

static void check_addr_field(lua_State *L, int t, const char *field, uint8_t *family, uint8_t *addr)
{
	struct ti_cidr c;

	if (lua_getfield(L, t, field) != LUA_TSTRING || ti_parse_cidr(lua_tostring(L, -1), &c) ||
	    c.plen != (c.family == 4 ? 32 : 128))
		luaL_error(L, "tcpinspect: map key field '%s': expected an IPv4/IPv6 address, got %s", field,
			   lua_tostring(L, -1) ? lua_tostring(L, -1) : luaL_typename(L, -1));
	lua_pop(L, 1);
	if (*family && *family != c.family)
		luaL_error(L, "tcpinspect: map key: saddr and daddr are of different families");
	*family = c.family;
	memcpy(addr, c.addr, 16);
}

static lua_Integer check_key_int(lua_State *L, int t, const char *field, lua_Integer max)
{
	lua_Integer v;
	int isnum;

	if (lua_istable(L, t))
		lua_getfield(L, t, field);
	else
		lua_pushvalue(L, t);
	v = lua_tointegerx(L, -1, &isnum);
	if (!isnum || v < 0 || v > max)
		luaL_error(L, "tcpinspect: map key field '%s': expected an integer 0-%I", field, max);
	lua_pop(L, 1);
	return v;
}

/* A drops key's reason: the running kernel's name (as the key gives it), or
 * its number (an integer, or the string the key gives for a value the
 * kernel's BTF does not name). */
static uint32_t check_reason(lua_State *L, int t)
{
	uint32_t v = 0; /* luaL_error does not return */
	lua_Integer n;
	int isnum;

	lua_getfield(L, t, "reason");
	n = lua_tointegerx(L, -1, &isnum); /* 5 or "5" */
	if (isnum && n >= 0 && n <= UINT32_MAX)
		v = (uint32_t)n;
	else if (lua_type(L, -1) != LUA_TSTRING || ti_drop_reason_value(lua_tostring(L, -1), &v))
		luaL_error(
			L,
			"tcpinspect: map key field 'reason': expected a drop reason (tcpinspect.drop_reasons()) or its number, got %s",
			lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : luaL_typename(L, -1));
	lua_pop(L, 1);
	return v;
}

static void check_key(lua_State *L, int t, enum ti_map_id kind, void *key)
{
	memset(key, 0, MAX_KEY);
	t = lua_absindex(L, t);
	switch (kind) {
	case TI_MAP_FLOWS: {
		struct ti_flow_key *k = key;

		luaL_checktype(L, t, LUA_TTABLE);
		check_addr_field(L, t, "saddr", &k->family, k->saddr);
		check_addr_field(L, t, "daddr", &k->family, k->daddr);
		k->sport = (uint16_t)check_key_int(L, t, "sport", 65535);
		k->dport = (uint16_t)check_key_int(L, t, "dport", 65535);
		break;
	}
	case TI_MAP_PORTS: *(uint64_t *)key = (uint64_t)check_key_int(L, t, "dport", 65535); break;
	case TI_MAP_SOURCES: {
		struct ti_addr_key *k = key;

		if (lua_type(L, t) == LUA_TSTRING) {
			lua_createtable(L, 0, 1);
			lua_pushvalue(L, t);
			lua_setfield(L, -2, "saddr");
			lua_replace(L, t);
		}
		luaL_checktype(L, t, LUA_TTABLE);
		check_addr_field(L, t, "saddr", &k->family, k->addr);
		break;
	}
	case TI_MAP_LEN_HIST: *(uint64_t *)key = (uint64_t)check_key_int(L, t, "slot", TI_HIST_SLOTS - 1); break;
	case TI_MAP_DROPS: {
		struct ti_drop_key *k = key;

		luaL_checktype(L, t, LUA_TTABLE);
		k->reason = check_reason(L, t);
		k->dport = (uint16_t)check_key_int(L, t, "dport", 65535);
		check_addr_field(L, t, "saddr", &k->family, k->saddr);
		break;
	}
	default: break;
	}
}

/* ---- methods ---------------------------------------------------------------- */

static int fail(lua_State *L, const struct ti_map *m, int err, const char *what)
{
	return ti_fail(L, err, "%s map '%s' failed: %s", what, ti_map_names[m->kind], strerror(-err));
}

/* The snapshot behind a pairs() loop: a userdata, freed by its __gc. */
static int snapshot_gc(lua_State *L)
{
	ti_snapshot_free(lua_touserdata(L, 1));
	return 0;
}

static struct ti_snapshot *new_snapshot(lua_State *L)
{
	struct ti_snapshot *snap = lua_newuserdatauv(L, sizeof(*snap), 0);

	memset(snap, 0, sizeof(*snap));
	if (luaL_newmetatable(L, "tcpinspect.map.snapshot")) {
		lua_pushcfunction(L, snapshot_gc);
		lua_setfield(L, -2, "__gc");
	}
	lua_setmetatable(L, -2);
	return snap;
}

/* upvalues: the snapshot, the next entry's index */
static int pairs_next(lua_State *L)
{
	struct ti_snapshot *snap = lua_touserdata(L, lua_upvalueindex(1));
	lua_Integer i = lua_tointeger(L, lua_upvalueindex(2));
	const uint8_t *e;

	if ((size_t)i >= snap->n)
		return 0;
	lua_pushinteger(L, i + 1);
	lua_replace(L, lua_upvalueindex(2));
	e = snap->e + (size_t)i * snap->esize;
	push_key(L, snap->map, e);
	push_value(L, snap->map, e + snap->ksize);
	return 2;
}

/* map:pairs() -> iterator over key, value tables, of a snapshot taken now
 * (the CPUs' entries merged); a failure to read the map is raised, since a
 * for loop cannot be handed a fail tuple. */
static int map_pairs(lua_State *L)
{
	struct ti_map *m;
	struct ti_session *s = map_session(L, 1, &m);
	struct ti_snapshot *snap = new_snapshot(L);
	int err = ti_kernel_map_snapshot(s->k, m->kind, snap);

	if (err)
		return luaL_error(L, "%s: iterating map '%s' failed: %s", ti_errname(err), ti_map_names[m->kind],
				  strerror(-err));
	lua_pushinteger(L, 0);
	lua_pushcclosure(L, pairs_next, 2);
	return 1;
}

static int map_lookup(lua_State *L)
{
	struct ti_map *m;
	struct ti_session *s = map_session(L, 1, &m);
	uint8_t key[MAX_KEY];
	uint64_t val[MAX_VAL / 8];
	int err;

	check_key(L, 2, m->kind, key);
	err = ti_kernel_map_lookup(s->k, m->kind, key, val);
	if (err == -ENOENT) {
		lua_pushnil(L); /* no such key */
		return 1;
	}
	if (err)
		return fail(L, m, err, "looking up in");
	push_value(L, m->kind, val);
	return 1;
}

static int map_delete(lua_State *L)
{
	struct ti_map *m;
	struct ti_session *s = map_session(L, 1, &m);
	uint8_t key[MAX_KEY];
	int err;

	check_key(L, 2, m->kind, key);
	if (m->kind == TI_MAP_LEN_HIST)
		return luaL_error(L, "tcpinspect: map '%s' is an array: use clear()", ti_map_names[m->kind]);
	err = ti_kernel_map_delete(s->k, m->kind, key);
	if (err && err != -ENOENT)
		return fail(L, m, err, "deleting from");
	lua_pushboolean(L, err == 0); /* false: no such key */
	return 1;
}

static int map_clear(lua_State *L)
{
	struct ti_map *m;
	struct ti_session *s = map_session(L, 1, &m);
	int err = ti_kernel_map_clear(s->k, m->kind);

	if (err)
		return fail(L, m, err, "clearing");
	lua_pushboolean(L, 1);
	return 1;
}

static int map_count(lua_State *L)
{
	struct ti_map *m;
	struct ti_session *s = map_session(L, 1, &m);
	struct ti_snapshot *snap = new_snapshot(L);
	int err = ti_kernel_map_snapshot(s->k, m->kind, snap);

	if (err)
		return fail(L, m, err, "counting");
	lua_pushinteger(L, (lua_Integer)snap->n);
	ti_snapshot_free(snap);
	return 1;
}

static int map_tostring(lua_State *L)
{
	struct ti_map *m = luaL_checkudata(L, 1, TI_MAP_MT);

	lua_pushfstring(L, "tcpinspect.map (%s)", ti_map_names[m->kind]);
	return 1;
}

int ti_map_new(lua_State *L, int session_idx, const char *name)
{
	struct ti_map *m;
	int kind;

	for (kind = 0; kind < TI_MAP_COUNT && strcmp(ti_map_names[kind], name); kind++)
		;
	if (kind == TI_MAP_COUNT)
		return ti_usage_error(L, NULL, "unknown map '%s' (known: %s)", name, ti_push_list(L, ti_map_names));
	if (!(((struct ti_session *)lua_touserdata(L, session_idx))->aggregates & (1u << kind)))
		return ti_usage_error(L, "aggregates",
				      "map '%s' is not open (option 'aggregates' left it out); open with "
				      "aggregates = true, or a list that names it: aggregates = {\"%s\", ...}%s",
				      name, name,
				      kind == TI_MAP_DROPS &&
						      !((struct ti_session *)lua_touserdata(L, session_idx))->drops
					      ? " and drops = true"
					      : "");
	session_idx = lua_absindex(L, session_idx);
	m = lua_newuserdatauv(L, sizeof(*m), 1);
	m->kind = (enum ti_map_id)kind;
	luaL_setmetatable(L, TI_MAP_MT);
	lua_pushvalue(L, session_idx);
	lua_setiuservalue(L, -2, 1);
	return 1;
}

void ti_map_register(lua_State *L)
{
	static const luaL_Reg meta[] = {
		{ "__tostring", map_tostring },
		{ NULL, NULL },
	};
	static const luaL_Reg methods[] = {
		{ "pairs", map_pairs }, { "lookup", map_lookup }, { "delete", map_delete },
		{ "clear", map_clear }, { "count", map_count },	  { NULL, NULL },
	};

	register_entry_mts(L);
	luaL_newmetatable(L, TI_MAP_MT);
	luaL_setfuncs(L, meta, 0);
	luaL_newlib(L, methods);
	lua_setfield(L, -2, "__index");
	lua_pop(L, 1);
}
