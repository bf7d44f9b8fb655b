/* packet.c: the tcpinspect.packet class.
 *
 * A session owns one reused packet *view*: each ring record is copied into
 * it before the callback runs, and it is marked invalid afterwards, so a
 * view kept past its callback raises a clear error instead of reading freed
 * ring memory.  p:copy() makes an independent packet that stays valid;
 * p:totable() builds a plain table.  Fields are converted only when read.
 */
#include <string.h>
#include <arpa/inet.h>
#include <net/if.h>
#include "ti.h"

struct ti_packet {
	struct ti_event e;
	bool valid;
	bool view; /* the session's reused view (false for copies) */
	double rt_offset;
};

static const char *const fields[] = {
	"ts", "time", "family", "saddr", "daddr", "sport", "dport", "seq", "ack",
	"window", "flags", "flagstr", "len", "iplen", "ttl", "ifindex", "netns",
	"probe", "cpu", NULL,
};

const char *ti_probe_name(int probe)
{
	switch (probe) {
	case TI_PROBE_TCP_V4_RCV: return "tcp_v4_rcv";
	case TI_PROBE_TCP_V6_RCV: return "tcp_v6_rcv";
	case TI_PROBE_CGROUP: return "cgroup_skb/ingress";
	case TI_PROBE_TC: return "tc/ingress";
	default: return "unknown";
	}
}

void ti_push_addr(lua_State *L, int family, const uint8_t *addr)
{
	char buf[INET6_ADDRSTRLEN];

	if (!inet_ntop(family == 6 ? AF_INET6 : AF_INET, addr, buf, sizeof(buf)))
		buf[0] = '\0';
	lua_pushstring(L, buf);
}

/* tcpdump's flag letters: S F R P U E W, then "." for ACK; "none" if empty. */
void ti_push_flagstr(lua_State *L, unsigned flags)
{
	static const struct { unsigned bit; char c; } order[] = {
		{ TI_SYN, 'S' }, { TI_FIN, 'F' }, { TI_RST, 'R' }, { TI_PSH, 'P' },
		{ TI_URG, 'U' }, { TI_ECE, 'E' }, { TI_CWR, 'W' }, { TI_ACK, '.' },
	};
	char buf[16];
	size_t n = 0;

	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
		if (flags & order[i].bit)
			buf[n++] = order[i].c;
	if (n == 0) {
		lua_pushliteral(L, "none");
		return;
	}
	lua_pushlstring(L, buf, n);
}

/* "tc/ingress:DEV": if_indextoname costs a netlink round trip (~9 us), so
 * the names of recently seen interfaces are kept, for one second. */
static void push_probe(lua_State *L, const struct ti_event *e)
{
	static __thread struct { uint32_t ifindex; double at; char name[IF_NAMESIZE]; } cache[16];
	unsigned slot = e->ifindex & 15;
	double now;

	if (e->probe != TI_PROBE_TC) {
		lua_pushstring(L, ti_probe_name(e->probe));
		return;
	}
	now = ti_now_monotonic();
	if (cache[slot].ifindex != e->ifindex || now - cache[slot].at > 1.0) {
		if (!if_indextoname(e->ifindex, cache[slot].name)) {
			lua_pushstring(L, ti_probe_name(e->probe));
			return;
		}
		cache[slot].ifindex = e->ifindex;
		cache[slot].at = now;
	}
	lua_pushfstring(L, "tc/ingress:%s", cache[slot].name);
}

/* Push field number i of e; the order is that of fields[]. */
static void push_field(lua_State *L, const struct ti_packet *p, int i)
{
	const struct ti_event *e = &p->e;

	switch (i) {
	case 0: lua_pushinteger(L, (lua_Integer)e->ts); break;
	case 1: lua_pushnumber(L, (double)e->ts / 1e9 + p->rt_offset); break;
	case 2: lua_pushinteger(L, e->family); break;
	case 3: ti_push_addr(L, e->family, e->saddr); break;
	case 4: ti_push_addr(L, e->family, e->daddr); break;
	case 5: lua_pushinteger(L, e->sport); break;
	case 6: lua_pushinteger(L, e->dport); break;
	case 7: lua_pushinteger(L, e->seq); break;
	case 8: lua_pushinteger(L, e->ack); break;
	case 9: lua_pushinteger(L, e->window); break;
	case 10: lua_pushinteger(L, e->flags); break;
	case 11: ti_push_flagstr(L, e->flags); break;
	case 12: lua_pushinteger(L, e->len); break;
	case 13: lua_pushinteger(L, e->iplen); break;
	case 14: lua_pushinteger(L, e->ttl); break;
	case 15: lua_pushinteger(L, e->ifindex); break;
	case 16: lua_pushinteger(L, e->netns); break;
	case 17: push_probe(L, e); break;
	case 18: lua_pushinteger(L, e->cpu); break;
	default: lua_pushnil(L);
	}
}

/* Field name -> index, by length and first letter before strcmp: the
 * callback path reads fields for every event, so keep this cheap. */
static int field_index(const char *k, size_t n)
{
	switch (k[0]) {
	case 't':
		if (n == 2 && k[1] == 's') return 0;
		if (n == 4 && !strcmp(k, "time")) return 1;
		if (n == 3 && !strcmp(k, "ttl")) return 14;
		break;
	case 'f':
		if (n == 6 && !strcmp(k, "family")) return 2;
		if (n == 5 && !strcmp(k, "flags")) return 10;
		if (n == 7 && !strcmp(k, "flagstr")) return 11;
		break;
	case 's':
		if (n == 5 && !strcmp(k, "saddr")) return 3;
		if (n == 5 && !strcmp(k, "sport")) return 5;
		if (n == 3 && !strcmp(k, "seq")) return 7;
		break;
	case 'd':
		if (n == 5 && !strcmp(k, "daddr")) return 4;
		if (n == 5 && !strcmp(k, "dport")) return 6;
		break;
	case 'a':
		if (n == 3 && !strcmp(k, "ack")) return 8;
		break;
	case 'w':
		if (n == 6 && !strcmp(k, "window")) return 9;
		break;
	case 'l':
		if (n == 3 && !strcmp(k, "len")) return 12;
		break;
	case 'i':
		if (n == 5 && !strcmp(k, "iplen")) return 13;
		if (n == 7 && !strcmp(k, "ifindex")) return 15;
		break;
	case 'n':
		if (n == 5 && !strcmp(k, "netns")) return 16;
		break;
	case 'p':
		if (n == 5 && !strcmp(k, "probe")) return 17;
		break;
	case 'c':
		if (n == 3 && !strcmp(k, "cpu")) return 18;
		break;
	}
	return -1;
}

static struct ti_packet *check_packet(lua_State *L, int idx)
{
	struct ti_packet *p = luaL_checkudata(L, idx, TI_PACKET_MT);

	if (!p->valid)
		luaL_error(L, "packet view used outside its callback: keep p:copy() or p:totable() instead");
	return p;
}

static int packet_index(lua_State *L)
{
	struct ti_packet *p = check_packet(L, 1);
	size_t n;
	const char *k = luaL_checklstring(L, 2, &n);
	int i = n ? field_index(k, n) : -1;

	if (i >= 0) {
		push_field(L, p, i);
		return 1;
	}
	/* methods */
	lua_getmetatable(L, 1);
	lua_getfield(L, -1, "__methods");
	lua_getfield(L, -1, k);
	if (lua_isnil(L, -1))
		return luaL_error(L, "packet has no field '%s'", k);
	return 1;
}

static int packet_copy(lua_State *L)
{
	struct ti_packet *p = check_packet(L, 1);

	return ti_packet_push_copy(L, &p->e, p->rt_offset);
}

static int packet_totable(lua_State *L)
{
	struct ti_packet *p = check_packet(L, 1);

	lua_createtable(L, 0, sizeof(fields) / sizeof(fields[0]) - 1);
	for (int i = 0; fields[i]; i++) {
		push_field(L, p, i);
		lua_setfield(L, -2, fields[i]);
	}
	return 1;
}

static int packet_tostring(lua_State *L)
{
	struct ti_packet *p = luaL_checkudata(L, 1, TI_PACKET_MT);

	if (!p->valid) {
		lua_pushliteral(L, "tcpinspect.packet (expired view)");
		return 1;
	}
	push_field(L, p, 3);
	push_field(L, p, 4);
	push_field(L, p, 11);
	lua_pushfstring(L, "tcpinspect.packet %s.%d > %s.%d [%s] len %d", lua_tostring(L, -3),
			(int)p->e.sport, lua_tostring(L, -2), (int)p->e.dport, lua_tostring(L, -1),
			(int)p->e.len);
	return 1;
}

static int packet_fields(lua_State *L)
{
	lua_newtable(L);
	for (int i = 0; fields[i]; i++) {
		lua_pushstring(L, fields[i]);
		lua_rawseti(L, -2, i + 1);
	}
	return 1;
}

/* Test hook: decode raw record bytes (a string of sizeof(struct ti_event))
 * into a packet, as the ring callback does.  Used by unit specs and fuzzing. */
static int packet_decode(lua_State *L)
{
	size_t n;
	const char *raw = luaL_checklstring(L, 1, &n);
	struct ti_event e;

	if (n != sizeof(e))
		return luaL_error(L, "record is %d bytes, expected %d", (int)n, (int)sizeof(e));
	memcpy(&e, raw, sizeof(e));
	return ti_packet_push_copy(L, &e, luaL_optnumber(L, 2, 0));
}

static struct ti_packet *new_packet(lua_State *L)
{
	struct ti_packet *p = lua_newuserdatauv(L, sizeof(*p), 0);

	memset(p, 0, sizeof(*p));
	luaL_setmetatable(L, TI_PACKET_MT);
	return p;
}

struct ti_event *ti_packet_new_view(lua_State *L)
{
	struct ti_packet *p = new_packet(L);

	p->view = true;
	return &p->e;
}

void ti_packet_set_valid(lua_State *L, int idx, bool valid, double rt_offset)
{
	struct ti_packet *p = lua_touserdata(L, idx);

	p->valid = valid;
	p->rt_offset = rt_offset;
}

int ti_packet_push_copy(lua_State *L, const struct ti_event *e, double rt_offset)
{
	struct ti_packet *p = new_packet(L);

	p->e = *e;
	p->valid = true;
	p->rt_offset = rt_offset;
	return 1;
}

void ti_packet_register(lua_State *L)
{
	static const luaL_Reg meta[] = {
		{ "__index", packet_index },
		{ "__tostring", packet_tostring },
		{ NULL, NULL },
	};
	static const luaL_Reg methods[] = {
		{ "copy", packet_copy },
		{ "totable", packet_totable },
		{ NULL, NULL },
	};
	static const luaL_Reg funcs[] = {
		{ "packet_fields", packet_fields },
		{ "decode_record", packet_decode },
		{ NULL, NULL },
	};

	luaL_newmetatable(L, TI_PACKET_MT);
	luaL_setfuncs(L, meta, 0);
	luaL_newlib(L, methods);
	lua_setfield(L, -2, "__methods");
	lua_pop(L, 1);
	luaL_setfuncs(L, funcs, 0); /* into the module table at the top */
	lua_pushinteger(L, sizeof(struct ti_event));
	lua_setfield(L, -2, "record_size");
}
