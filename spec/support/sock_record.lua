-- SPDX-License-Identifier: GPL-2.0-only
-- A decoded-record fixture with every field set: a drop record (probe
-- TI_PROBE_KFREE_SKB) whose receiving-socket fields (bpf/tcpinspect.h,
-- struct ti_event from offset 96) name a socket a live process holds, so
-- that p.pid and p.comm resolve (luaext/kernel_sockets.c) as they do for
-- a real record.  Returns the raw record, the holder's pid and a function
-- that ends the holder.
local M = {}

function M.full_record(core)
	local h = assert(io.popen([[exec python3 -c 'import socket, os, sys, time
s = socket.socket()
print(os.getpid(), os.fstat(s.fileno()).st_ino, flush=True)
time.sleep(30)' 2>&1]], "r"))
	local line = assert(h:read("l"), "the socket holder printed nothing")
	local pid, ino = line:match("^(%d+) (%d+)$")
	assert(pid, line)
	local head = string.rep("\0", 83) .. "\6" .. string.rep("\0", 96 - 84)
	-- sk_cookie, sk_ino, uid, sk_state (ESTABLISHED), sk_flags (TI_SK_UID), pad
	local sk = string.pack("<I8I8I4BBI2", 7, tonumber(ino), 1000, 1, 1, 0)
	local raw = head .. sk .. string.rep("\0", core.record_size - #head - #sk)
	-- a miss rescans /proc at most every 100 ms (kernel_sockets.c): let
	-- an earlier miss's window pass, as a live session's next record would
	local t = core.monotonic() + 0.15
	while core.monotonic() < t do core.sleep(0.02) end
	return raw, tonumber(pid), function() os.execute("kill " .. pid .. " 2>/dev/null"); h:close() end
end

return M
