// SPDX-License-Identifier: GPL-2.0-only
/* spec/fuzz/fuzz_decode.c: libFuzzer target for the event decoder.
 *
 * One Lua state with tcpinspect.core loaded.  Each input is split into a
 * control byte, an optional 8-byte rt_offset and the raw record, which goes
 * to core.decode_record(raw [, offset]).  Short, exact and oversized records
 * must give either a clean Lua error (a string) or a valid packet; every
 * field is then read, and totable(), copy() and tostring() are called; the
 * copy must equal the original.  The raw bytes are also used as a field name.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lua.h>
#include <lualib.h>
#include <lauxlib.h>

int luaopen_tcpinspect_core(lua_State *L);

static lua_State *L;

static const char script[] =
	"local core, raw, off, key = ...\n"
	"local ok, p = pcall(core.decode_record, raw, off)\n"
	"if not ok then\n"
	"  assert(type(p) == 'string', 'decode_record raised a non-string')\n"
	/* caplen: struct ti_event's offset 74 (Lua's 75) */
	"  assert(#raw < core.record_size or #raw ~= core.record_size + string.unpack('<I2', raw, 75),\n"
	"    'a record of the right size was refused: ' .. p)\n"
	"  return\n"
	"end\n"
	"assert(#raw == core.record_size + p.caplen, 'a record of the wrong size was accepted')\n"
	"assert(#p:bytes() == p.caplen and p:bytes() == raw:sub(core.record_size + 1), 'bytes differ')\n"
	"local c = p:copy()\n"
	"local t = p:totable()\n"
	/* nil only where a record may lack the field: a drop's own (reason,
	 * location), the receiving socket's (sockets = true); tcpinspect.json's
	 * OPTIONAL */
	"local optional = { reason = true, location = true, sk_state = true, sk_cookie = true,\n"
	"  uid = true, pid = true, comm = true }\n"
	"for _, f in ipairs(core.packet_fields()) do\n"
	"  local v = p[f]\n"
	"  assert(v ~= nil or optional[f], f)\n"
	"  assert(t[f] == v or v ~= v, 'totable differs at ' .. f)\n"
	"  assert(c[f] == v or v ~= v, 'copy differs at ' .. f)\n"
	"end\n"
	"assert(type(tostring(p)) == 'string' and type(tostring(c)) == 'string')\n"
	"local ok2, v = pcall(function() return p[key] end)\n"
	"assert(ok2 or type(v) == 'string')\n"
	"assert(not pcall(function() return p.no_such_field end))\n";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	L = luaL_newstate();
	luaL_openlibs(L);
	luaL_requiref(L, "tcpinspect.core", luaopen_tcpinspect_core, 0);
	lua_setglobal(L, "core");
	if (luaL_loadbuffer(L, script, sizeof(script) - 1, "=fuzz_decode"))
		abort();
	lua_setglobal(L, "check");
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int top = lua_gettop(L);
	double off = 0;
	bool have_off = false;

	if (size > 0) {
		uint8_t ctl = data[0];

		data++, size--;
		if ((ctl & 1) && size >= sizeof(off)) {
			memcpy(&off, data, sizeof(off));
			data += sizeof(off), size -= sizeof(off);
			have_off = true;
		}
	}
	lua_getglobal(L, "check");
	lua_getglobal(L, "core");
	lua_pushlstring(L, (const char *)data, size);
	if (have_off)
		lua_pushnumber(L, off);
	else
		lua_pushnil(L);
	lua_pushlstring(L, (const char *)data, size < 16 ? size : 16);
	if (lua_pcall(L, 4, 0, 0) != LUA_OK) {
		fprintf(stderr, "fuzz_decode: %s\n", lua_tostring(L, -1));
		abort();
	}
	if (lua_gettop(L) != top)
		abort();
	lua_gc(L, LUA_GCSTEP, 0);
	return 0;
}
