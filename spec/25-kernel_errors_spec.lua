-- SPDX-License-Identifier: GPL-2.0-only
-- Environment failures come back as fail tuples with the errno's real name,
-- and a failing map syscall is told apart from a missing key.  The map
-- failures are injected with build/failinj.so (spec/support/failinj.c), an
-- LD_PRELOAD shim that fails chosen bpf(2) commands while a control file
-- exists; the child opens a session first, then switches failures on.
local modes = {}
for m in (os.getenv("TCPINSPECT_EXPECT_MODES") or ""):gmatch("[^,]+") do modes[#modes + 1] = m end

-- bpf(2) commands: a lookup or delete reads the key's element; count and
-- pairs read the whole map in batches; clear writes it in one batch
local BPF_MAP_LOOKUP_ELEM, BPF_MAP_LOOKUP_BATCH, BPF_MAP_UPDATE_BATCH = 1, 24, 26
local EPERM, EBADF, EFAULT = 1, 9, 14

local CHILD = [[
package.path = "lua/?.lua;" .. package.path
package.cpath = "build/?.so;" .. package.cpath
local tcpinspect = require "tcpinspect"
local mode, ctl = ...
local s, err, errno = tcpinspect.open{ mode = mode, dev = mode == "tc" and "lo" or nil,
  filter = { port = 47013 } }
if not s then print("FAIL", errno, err) return end
local function fail(cmd, e)
  local f = assert(io.open(ctl, "w")); f:write(cmd, " ", e, "\n"); f:close()
end
local function show(tag, ...)
  local t = table.pack(...)
  for i = 1, t.n do t[i] = tostring(t[i]) end
  print(tag, t.n, table.concat(t, "|"))
end
local flows = s:map("flows")
local key = { saddr = "127.0.0.1", daddr = "127.0.0.1", sport = 1, dport = 47013 }
show("MISSING", flows:lookup(key))
show("DELMISSING", flows:delete(key))
fail(BPF_MAP_LOOKUP_ELEM, EBADF)
show("LOOKUP", flows:lookup(key))
show("PORTS", s:map("ports"):lookup(47013))
fail(BPF_MAP_LOOKUP_BATCH, EFAULT)
show("COUNT", flows:count())
show("PAIRS", pcall(function() for _ in flows:pairs() do end end))
fail(BPF_MAP_UPDATE_BATCH, EFAULT)
show("CLEAR", flows:clear())
fail(BPF_MAP_LOOKUP_ELEM, EPERM)
show("DELETE", flows:delete(key))
os.remove(ctl)
show("AFTER", flows:lookup(key), flows:count())
s:close()
]]

-- fdlimit: run the child with `ulimit -n fdlimit` (set in an inner shell that
-- then execs, so no redirection happens under the low limit)
local function run_child(mode, fdlimit)
	local path, ctl = os.tmpname(), os.tmpname()
	os.remove(ctl)
	local f = assert(io.open(path, "w"))
	f:write(("local BPF_MAP_LOOKUP_ELEM, BPF_MAP_LOOKUP_BATCH, BPF_MAP_UPDATE_BATCH = %d, %d, %d\n")
		:format(BPF_MAP_LOOKUP_ELEM, BPF_MAP_LOOKUP_BATCH, BPF_MAP_UPDATE_BATCH))
	f:write(("local EPERM, EBADF, EFAULT = %d, %d, %d\n"):format(EPERM, EBADF, EFAULT))
	f:write(CHILD)
	f:close()
	local p = assert(io.popen(("sh -c 'ulimit -n %d; exec env TI_FAILINJ_FILE=%s LD_PRELOAD=build/failinj.so lua5.4 %s %s %s' 2>&1")
		:format(fdlimit or 1024, ctl, path, mode, ctl)))
	local out = p:read("a")
	p:close()
	os.remove(path)
	os.remove(ctl)
	return out
end

describe("errors #kernel", function()
	for _, mode in ipairs(modes) do
		it(mode .. ": a failing map syscall is nil, 'ENAME: ...', errno; a missing key is nil alone #anymode", function()
			local out = run_child(mode)
			assert.not_matches("FAIL", out)
			assert.matches("MISSING\t1\tnil\n", out)
			assert.matches("DELMISSING\t1\tfalse\n", out)
			assert.matches("LOOKUP\t3\tnil|EBADF: looking up in map 'flows' failed: Bad file descriptor|9\n", out, 1, true)
			assert.matches("PORTS\t3\tnil|EBADF: looking up in map 'ports' failed: Bad file descriptor|9\n", out, 1, true)
			assert.matches("COUNT\t3\tnil|EFAULT: counting map 'flows' failed: Bad address|14\n", out, 1, true)
			assert.matches("CLEAR\t3\tnil|EFAULT: clearing map 'flows' failed: Bad address|14\n", out, 1, true)
			-- a loop cannot be handed a fail tuple: the iterator raises it
			assert.matches("PAIRS\t2\tfalse|[^\n]*EFAULT: iterating map 'flows' failed: Bad address\n", out)
			assert.matches("DELETE\t3\tnil|EPERM: deleting from map 'flows' failed: Operation not permitted|1\n", out, 1, true)
			-- with the failures off again, the same map works
			assert.matches("AFTER\t2\tnil|0\n", out, 1, true)
		end)

		it(mode .. ": out of file descriptors: EMFILE by name, errno 24, and what to do", function()
			local out = run_child(mode, 8)
			assert.matches("^FAIL\t24\tEMFILE: " .. mode .. ": [^\n]*Too many open files; out of file descriptors", out)
			assert.matches("raise the limit %(ulimit %-n%)", out)
		end)
	end
end)
