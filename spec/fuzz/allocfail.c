// SPDX-License-Identifier: GPL-2.0-only
/* spec/fuzz/allocfail.c: run a Lua script (open -> poll -> close) with an
 * allocator that fails at the k-th allocation, for every k up to the number
 * of allocations the script makes (spec/fuzz/run allocfail).
 *
 *   allocfail SCRIPT [KMAX]
 *
 * A failure is transient: the k-th request fails, and so does the one right
 * after it (Lua retries once after an emergency collection); later requests
 * succeed again, so error handling and lua_close() run with memory.  With
 * ALLOCFAIL_STICKY=1 every request from the k-th on fails instead.
 *
 * For each k the script must end with LUA_OK or LUA_ERRMEM (any other error
 * is reported), and after lua_close() no BPF program named ti_* may be left
 * in the kernel.  Leaks are reported by LSan when the process exits.  Exits
 * non-zero if any k misbehaved.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <lua.h>
#include <lualib.h>
#include <lauxlib.h>
#include <bpf/bpf.h>

static long n_alloc, fail_at, fail_until;
static int sticky, verbose, failed_once;

static void *alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	(void)ud;
	(void)osize;
	if (nsize == 0) {
		free(ptr);
		return NULL;
	}
	n_alloc++;
	if (fail_at && n_alloc >= fail_at && (sticky || n_alloc <= fail_until)) {
		failed_once = 1;
		return NULL;
	}
	return realloc(ptr, nsize);
}

/* Count BPF programs whose name starts with ti_. */
static int ti_progs(void)
{
	__u32 id = 0;
	int n = 0;

	while (!bpf_prog_get_next_id(id, &id)) {
		struct bpf_prog_info info = {};
		__u32 len = sizeof(info);
		int fd = bpf_prog_get_fd_by_id(id);

		if (fd < 0)
			continue;
		if (!bpf_obj_get_info_by_fd(fd, &info, &len) && !strncmp(info.name, "ti_", 3))
			n++;
		close(fd);
	}
	return n;
}

static int body(lua_State *L)
{
	const char *script = lua_touserdata(L, 1);

	luaL_openlibs(L);
	if (luaL_loadfile(L, script))
		return lua_error(L);
	lua_call(L, 0, 0);
	return 0;
}

/* Returns the status of one run, -1 if lua_newstate itself failed. */
static int run(const char *script, long k, char *msg, size_t msglen)
{
	lua_State *L;
	int rc;

	n_alloc = 0;
	fail_at = k;
	fail_until = k + 1;
	failed_once = 0;
	msg[0] = '\0';
	L = lua_newstate(alloc, NULL);
	if (!L)
		return -1;
	lua_pushcfunction(L, body);
	lua_pushlightuserdata(L, (void *)script);
	rc = lua_pcall(L, 1, 0, 0);
	if (rc != LUA_OK)
		snprintf(msg, msglen, "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "(no message)");
	lua_close(L);
	return rc;
}

int main(int argc, char **argv)
{
	char msg[4096];
	long total, kmax, bad = 0, errmem = 0, ok = 0, other = 0;
	int base, rc;

	if (argc < 2) {
		fprintf(stderr, "usage: allocfail SCRIPT [KMAX]\n");
		return 2;
	}
	sticky = getenv("ALLOCFAIL_STICKY") && atoi(getenv("ALLOCFAIL_STICKY"));
	verbose = getenv("ALLOCFAIL_VERBOSE") && atoi(getenv("ALLOCFAIL_VERBOSE"));
	base = ti_progs();
	rc = run(argv[1], 0, msg, sizeof(msg));
	total = n_alloc;
	if (rc != LUA_OK) {
		fprintf(stderr, "allocfail: the script fails without allocation failures: %s\n", msg);
		return 1;
	}
	kmax = argc > 2 ? atol(argv[2]) : total;
	if (kmax > total)
		kmax = total;
	printf("allocfail: %s makes %ld allocations; failing each k in 1..%ld (%s)\n", argv[1], total, kmax,
	       sticky ? "sticky" : "transient");
	fflush(stdout);
	for (long k = 1; k <= kmax; k++) {
		int left;

		rc = run(argv[1], k, msg, sizeof(msg));
		left = ti_progs() - base;
		if (verbose)
			printf("allocfail: k=%ld status %d: %.200s\n", k, rc, msg);
		if (rc == -1 || rc == LUA_ERRMEM)
			errmem++;
		else if (rc == LUA_OK)
			ok++;
		if (left) {
			printf("allocfail: k=%ld: %d ti_ BPF programs left after lua_close (status %d: %s)\n", k, left,
			       rc, msg);
			bad++;
		}
		if (rc != -1 && rc != LUA_OK && rc != LUA_ERRMEM) {
			/* a Lua error that is not LUA_ERRMEM: fine only if it says memory */
			if (!strstr(msg, "not enough memory") && !strstr(msg, "ENOMEM") && !strstr(msg, "memory")) {
				printf("allocfail: k=%ld: status %d, not a memory error: %s\n", k, rc, msg);
				bad++;
			}
			other++;
		}
	}
	printf("allocfail: %ld runs: %ld LUA_ERRMEM, %ld ok, %ld other memory errors, %ld bad\n", kmax, errmem, ok,
	       other, bad);
	return bad ? 1 : 0;
}
