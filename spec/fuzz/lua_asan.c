// SPDX-License-Identifier: GPL-2.0-only
/* spec/fuzz/lua_asan.c: a minimal Lua 5.4 interpreter linked with ASan,
 * LSan and UBSan, for spec/fuzz/run asan.  It loads the sanitized core
 * (build/asan/tcpinspect/core.so) without LD_PRELOAD, so the programs the
 * script starts (bpftool) are not run under the sanitizer.
 *
 *   lua_asan SCRIPT [ARGS...]     exit status: 0 if the script returned
 */
#include <stdio.h>
#include <lua.h>
#include <lualib.h>
#include <lauxlib.h>

static int traceback(lua_State *L)
{
	luaL_traceback(L, L, lua_tostring(L, 1), 1);
	return 1;
}

int main(int argc, char **argv)
{
	lua_State *L = luaL_newstate();
	int rc;

	if (argc < 2 || !L)
		return 2;
	luaL_openlibs(L);
	lua_newtable(L);
	for (int i = 0; i < argc - 1; i++) {
		lua_pushstring(L, argv[i + 1]);
		lua_rawseti(L, -2, i);
	}
	lua_setglobal(L, "arg");
	lua_pushcfunction(L, traceback);
	rc = luaL_loadfile(L, argv[1]);
	if (rc == LUA_OK)
		rc = lua_pcall(L, 0, 0, 1);
	if (rc != LUA_OK)
		fprintf(stderr, "lua_asan: %s\n", lua_tostring(L, -1));
	lua_close(L);
	return rc == LUA_OK ? 0 : 1;
}
