// SPDX-License-Identifier: GPL-2.0-only
/* spec/support/fork.c: fork() for the specs (Debian 12's lua-posix has no
 * Lua 5.4 build).  spec/46 compiles it into a scratch directory and
 * spec/support/session_child.lua loads it with package.loadlib:
 *
 *   local fork = package.loadlib(PATH, "luaopen_ti_fork")()
 *   local pid = fork.fork()      -- 0 in the child
 *   local code = fork.wait(pid)  -- its exit status, or nil, why
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <lauxlib.h>
#include <lua.h>

static int l_fork(lua_State *L)
{
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		lua_pushnil(L);
		lua_pushstring(L, strerror(errno));
		return 2;
	}
	lua_pushinteger(L, pid);
	return 1;
}

static int l_wait(lua_State *L)
{
	pid_t pid = (pid_t)luaL_checkinteger(L, 1);
	int st;

	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR) {
			lua_pushnil(L);
			lua_pushstring(L, strerror(errno));
			return 2;
		}
	}
	if (WIFEXITED(st))
		lua_pushinteger(L, WEXITSTATUS(st));
	else
		lua_pushinteger(L, 128 + WTERMSIG(st));
	return 1;
}

int luaopen_ti_fork(lua_State *L)
{
	static const luaL_Reg f[] = { { "fork", l_fork }, { "wait", l_wait }, { NULL, NULL } };

	luaL_newlib(L, f);
	return 1;
}
