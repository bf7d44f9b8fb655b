-- SPDX-License-Identifier: GPL-2.0-only
-- spec/bench/probe_cost.lua: the BPF cost per segment of each hook under the
-- same traffic, from the kernel's own accounting (kernel.bpf_stats_enabled:
-- run_time_ns / run_cnt of the session's programs).  Made for the qemu
-- guests, where packet rates mean nothing (emulated time) but the ratio of
-- two hooks' costs measured alike does (make bench-vm).
--
--   lua5.4 spec/bench/probe_cost.lua [MODES] [ROUNDS] [SECS]
--   MODES: comma list (default fentry,kprobe); each round runs every mode
--   once, in random order, with the same established-flow load
--   (spec/bench/est_load.py) filtered to its port; aggregates on, events off.
package.path = "lua/?.lua;lua/?/init.lua;spec/bench/?.lua;" .. package.path
package.cpath = (os.getenv("TI_CPATH") or "build/?.so;") .. package.cpath

local ti = require "tcpinspect"
local C = require "common"

local modes = {}
for m in (arg[1] or "fentry,kprobe"):gmatch("[^,]+") do modes[#modes + 1] = m end
local ROUNDS, SECS = tonumber(arg[2]) or 5, tonumber(arg[3]) or 2
local PORT = 47996
math.randomseed(os.time())

local function sh(cmd)
	local f = assert(io.popen(cmd))
	local out = f:read("a")
	f:close()
	return out
end

-- run_time_ns and run_cnt summed over this process's ti_ programs
local function prog_stats(pid)
	local ns, cnt = 0, 0
	local fds = sh("ls -l /proc/" .. pid .. "/fd 2>/dev/null")
	for fd in fds:gmatch(" (%d+) %-> anon_inode:bpf%-prog") do
		local info = sh(("cat /proc/%d/fdinfo/%s"):format(pid, fd))
		local id = info:match("prog_id:%s*(%d+)")
		if id then
			local show = sh("bpftool prog show id " .. id)
			if show:match("name ti_") then
				ns = ns + tonumber(show:match("run_time_ns (%d+)") or 0)
				cnt = cnt + tonumber(show:match("run_cnt (%d+)") or 0)
			end
		end
	end
	return ns, cnt
end

sh("sysctl -qw kernel.bpf_stats_enabled=1")
local pid
do
	local f = assert(io.open("/proc/self/stat"))
	pid = tonumber(f:read("a"):match("^(%d+)"))
	f:close()
end
local res = {}
for _, m in ipairs(modes) do res[m] = {} end
for _ = 1, ROUNDS do
	for _, m in ipairs(C.shuffle({ table.unpack(modes) })) do
		local s = assert(ti.open { mode = m, events = false, filter = { port = PORT } })
		local ns0, cnt0 = prog_stats(pid)
		sh(("python3 spec/bench/est_load.py %d %g 4 >/dev/null 2>&1"):format(PORT, SECS))
		local ns1, cnt1 = prog_stats(pid)
		s:close()
		if cnt1 > cnt0 then table.insert(res[m], (ns1 - ns0) / (cnt1 - cnt0)) end
	end
end
sh("sysctl -qw kernel.bpf_stats_enabled=0")
local f = io.open("/proc/sys/kernel/osrelease")
local kernel = f and f:read("l") or "?"
if f then f:close() end
print(("== BPF cost per segment by hook, %s (bpf_stats: run_time_ns / run_cnt; %d rounds x %g s, established load, aggregates on)")
	:format(kernel, ROUNDS, SECS))
local base = C.median(res[modes[1]])
for _, m in ipairs(modes) do
	local med = C.median(res[m])
	print(("  %-7s %8.0f ns/segment   ratio to %s %.2f   (%d rounds)"):format(m, med, modes[1],
		med / base, #res[m]))
end
local parts = {}
for i = 2, #modes do parts[#parts + 1] = ("%s/%s %.2f"):format(modes[i], modes[1], C.median(res[modes[i]]) / base) end
print(("SUMMARY probe cost %s: %s"):format(kernel, table.concat(parts, ", ")))
