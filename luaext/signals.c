// SPDX-License-Identifier: GPL-2.0-only
/* signals.c: trap_signals() and signaled().  A trapped signal interrupts
 * poll's wait (EINTR) and ends its delivery of records after the current
 * callback (session.c reads ti_signal_count: a poll stops when it moves);
 * session:run stops on it.
 * No Lua runs in the handler. */
#include <signal.h>
#include <string.h>
#include "ti.h"

volatile sig_atomic_t ti_pending_signal;
volatile sig_atomic_t ti_signal_count; /* trapped signals so far: poll stops when it moves */

static const struct {
	const char *name;
	int signo;
} signals[] = {
	{ "INT", SIGINT },   { "TERM", SIGTERM }, { "HUP", SIGHUP },   { "QUIT", SIGQUIT },
	{ "USR1", SIGUSR1 }, { "USR2", SIGUSR2 }, { "PIPE", SIGPIPE },
};

static void on_signal(int signo)
{
	ti_pending_signal = signo;
	ti_signal_count++;
}

/* trap_signals{"INT", "TERM", ...}: install the handlers, clear the flag. */
static int signals_trap(lua_State *L)
{
	struct sigaction sa;

	luaL_checktype(L, 1, LUA_TTABLE);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal; /* no SA_RESTART: waits return EINTR */
	sigemptyset(&sa.sa_mask);
	for (lua_Integer i = 1; i <= luaL_len(L, 1); i++) {
		const char *name;
		size_t k;

		lua_geti(L, 1, i);
		name = luaL_checkstring(L, -1);
		for (k = 0; k < sizeof(signals) / sizeof(signals[0]); k++)
			if (!strcmp(name, signals[k].name))
				break;
		if (k == sizeof(signals) / sizeof(signals[0]))
			return ti_usage_error(
				L, NULL, "trap_signals: unknown signal '%s' (INT, TERM, HUP, QUIT, USR1, USR2, PIPE)",
				name);
		sigaction(signals[k].signo, &sa, NULL);
		lua_pop(L, 1);
	}
	ti_pending_signal = 0;
	return 0;
}

/* signal_count() -> how many trapped signals arrived so far (never reset):
 * session:run returns "signal" only for one it has not reported yet. */
static int signals_count(lua_State *L)
{
	lua_pushinteger(L, (lua_Integer)ti_signal_count);
	return 1;
}

/* signaled() -> "INT" | "TERM" | ... | nil: the last trapped signal. */
static int signals_signaled(lua_State *L)
{
	int signo = ti_pending_signal;

	for (size_t k = 0; k < sizeof(signals) / sizeof(signals[0]); k++) {
		if (signals[k].signo == signo) {
			lua_pushstring(L, signals[k].name);
			return 1;
		}
	}
	lua_pushnil(L);
	return 1;
}

void ti_signals_register(lua_State *L)
{
	static const luaL_Reg funcs[] = {
		{ "trap_signals", signals_trap },
		{ "signaled", signals_signaled },
		{ "signal_count", signals_count },
		{ NULL, NULL },
	};

	luaL_setfuncs(L, funcs, 0); /* into the module table at the top */
}
