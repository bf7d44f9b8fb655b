// SPDX-License-Identifier: GPL-2.0-only
/* conn.c: tcpinspect.conn, one connection's incoming direction as
 * session:on_conn and session:conns() hand it out (conns = true;
 * bpf/ti_conn.h keeps the state, kernel_conns.c ends it).  A conn is a
 * copy, not a view: it stays valid after its callback (connections are
 * few next to segments).  Fields are built when read; CONN_FIELDS is the
 * one list, which the reference docs are checked against
 * (tcpinspect.core.conn_fields, spec/03).
 */
#include <string.h>
#include "ti.h"
#include "ti_conn.h"

struct ti_conn_ud {
	struct ti_conn_key key;
	struct ti_conn c;
	double rt_offset; /* wall clock minus the records' clock, s */
};

static const char *const end_names[] = {
#define TI_X(id, name) name,
	TI_CONN_ENDS(TI_X)
#undef TI_X
		NULL,
};

const char *const *ti_conn_end_names = end_names;

static void push_history(lua_State *L, const struct ti_conn *c)
{
	size_t n = c->hlen < TI_CONN_HISTORY ? c->hlen : TI_CONN_HISTORY;

	lua_pushlstring(L, (const char *)c->history, n);
}

static void push_secs(lua_State *L, uint64_t ns)
{
	lua_pushnumber(L, (double)ns / 1e9);
}

/* X(name, push) in documentation order.  In scope: L, u, c. */
#define CONN_FIELDS(X)                                                                 \
	X(saddr, ti_push_addr(L, u->key.family, u->key.saddr))                         \
	X(daddr, ti_push_addr(L, u->key.family, u->key.daddr))                         \
	X(sport, lua_pushinteger(L, u->key.sport))                                     \
	X(dport, lua_pushinteger(L, u->key.dport))                                     \
	X(family, lua_pushinteger(L, u->key.family))                                   \
	X(netns, lua_pushinteger(L, u->key.netns))                                     \
	X(start, lua_pushnumber(L, (double)c->first_ts / 1e9 + u->rt_offset))          \
	X(last, lua_pushnumber(L, (double)c->last_ts / 1e9 + u->rt_offset))            \
	X(duration, push_secs(L, c->last_ts - c->first_ts))                            \
	X(segments, lua_pushinteger(L, (lua_Integer)c->segments))                      \
	X(bytes, lua_pushinteger(L, (lua_Integer)c->bytes))                            \
	X(history, push_history(L, c))                                                 \
	X(handshake, c->handshake_ns ? push_secs(L, c->handshake_ns) : lua_pushnil(L)) \
	X(retransmits, lua_pushinteger(L, (lua_Integer)c->retransmits))                \
	X(zero_windows, lua_pushinteger(L, (lua_Integer)c->zero_windows))              \
	X(end_reason, lua_pushstring(L, c->end < TI_CONN_END_COUNT ? end_names[c->end] : "open"))

enum {
#define TI_X(name, push) CF_##name,
	CONN_FIELDS(TI_X)
#undef TI_X
		CF_COUNT,
};

static const char *const fields[] = {
#define TI_X(name, push) #name,
	CONN_FIELDS(TI_X)
#undef TI_X
		NULL,
};

const char *const *ti_conn_fields = fields;

static void push_field(lua_State *L, const struct ti_conn_ud *u, int f)
{
	const struct ti_conn *c = &u->c;

	switch (f) {
#define TI_X(name, push) \
	case CF_##name: push; break;
		CONN_FIELDS(TI_X)
#undef TI_X
	default: lua_pushnil(L);
	}
}

void ti_conn_push(lua_State *L, const struct ti_conn_key *key, const struct ti_conn *c, double rt_offset)
{
	struct ti_conn_ud *u = lua_newuserdatauv(L, sizeof(*u), 0);

	u->key = *key;
	u->c = *c;
	u->rt_offset = rt_offset;
	luaL_setmetatable(L, TI_CONN_MT);
}

static int conn_index(lua_State *L)
{
	const struct ti_conn_ud *u = luaL_checkudata(L, 1, TI_CONN_MT);
	const char *k = luaL_checkstring(L, 2);

	for (int i = 0; fields[i]; i++) {
		if (!strcmp(k, fields[i])) {
			push_field(L, u, i);
			return 1;
		}
	}
	if (!strcmp(k, "totable")) {
		lua_getmetatable(L, 1);
		lua_getfield(L, -1, "totable");
		return 1;
	}
	return luaL_error(L, "tcpinspect: conn has no field '%s'%s", k, ti_push_suggestion(L, k, fields));
}

/* conn:totable() -> a plain table of every field */
static int conn_totable(lua_State *L)
{
	const struct ti_conn_ud *u = luaL_checkudata(L, 1, TI_CONN_MT);

	lua_createtable(L, 0, CF_COUNT);
	for (int i = 0; fields[i]; i++) {
		push_field(L, u, i);
		lua_setfield(L, -2, fields[i]);
	}
	return 1;
}

static int conn_tostring(lua_State *L)
{
	const struct ti_conn_ud *u = luaL_checkudata(L, 1, TI_CONN_MT);

	push_field(L, u, CF_saddr);
	push_field(L, u, CF_daddr);
	push_field(L, u, CF_history);
	push_field(L, u, CF_end_reason);
	lua_pushfstring(L, "tcpinspect.conn %s.%d > %s.%d %s %s segments %I bytes %I", lua_tostring(L, -4),
			(int)u->key.sport, lua_tostring(L, -3), (int)u->key.dport, lua_tostring(L, -2),
			lua_tostring(L, -1), (lua_Integer)u->c.segments, (lua_Integer)u->c.bytes);
	return 1;
}

/* tcpinspect.core.conn_fields() -> the field names, in order */
static int conn_fields(lua_State *L)
{
	lua_createtable(L, CF_COUNT, 0);
	for (int i = 0; fields[i]; i++) {
		lua_pushstring(L, fields[i]);
		lua_rawseti(L, -2, i + 1);
	}
	return 1;
}

/* Test hook: the conn of raw conn-end record bytes (struct ti_event of probe
 * "conn" and its struct ti_conn), as the ring hands it out, or nil. */
static int conn_decode(lua_State *L)
{
	size_t n;
	const char *raw = luaL_checklstring(L, 1, &n);
	struct ti_conn_key key;
	struct ti_conn c;

	if (ti_conn_record(raw, n, &key, &c))
		return 0;
	ti_conn_push(L, &key, &c, luaL_optnumber(L, 2, 0));
	return 1;
}

void ti_conn_register(lua_State *L)
{
	static const luaL_Reg meta[] = {
		{ "__index", conn_index },
		{ "__tostring", conn_tostring },
		{ "totable", conn_totable },
		{ NULL, NULL },
	};
	static const luaL_Reg funcs[] = {
		{ "conn_fields", conn_fields },
		{ "decode_conn", conn_decode },
		{ NULL, NULL },
	};

	luaL_newmetatable(L, TI_CONN_MT);
	luaL_setfuncs(L, meta, 0);
	lua_pop(L, 1);
	luaL_setfuncs(L, funcs, 0); /* into the module table on the stack */
	lua_newtable(L);
	for (int i = 0; end_names[i]; i++) {
		lua_pushstring(L, end_names[i]);
		lua_rawseti(L, -2, i + 1);
	}
	lua_setfield(L, -2, "conn_end_names");
}
