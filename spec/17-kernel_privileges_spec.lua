-- SPDX-License-Identifier: GPL-2.0-only
-- Capabilities (RELIABILITY 1): for each mode this kernel must offer, open()
-- run with no capabilities, CAP_BPF only, and the pair the mode needs.
-- A missing capability is named in the error, never a bare EPERM; with the
-- right pair the mode opens.
local modes = {}
for m in (os.getenv("TCPINSPECT_EXPECT_MODES") or "tc,cgroup"):gmatch("[^,]+") do
	modes[#modes + 1] = m
end

local needs = { fentry = "perfmon", kprobe = "perfmon", tc = "net_admin", cgroup = "net_admin" }

-- Run open{mode=} in a child whose bounding set holds only caps.
local function open_with(caps, mode)
	local code = ([[package.cpath="build/?.so;"..package.cpath
    local c = require "tcpinspect.core"
    local s, err, errno = c.open{ mode = %q, events = false }
    if s then print("OK " .. s.mode) s:close() else print("FAIL " .. tostring(errno) .. " " .. err) end]]):format(mode)
	local p = assert(io.popen(("setpriv --bounding-set=%s lua5.4 -e '%s' 2>&1"):format(caps, code)))
	local out = p:read("a")
	p:close()
	return out
end

local function paranoid()
	local f = io.open("/proc/sys/kernel/perf_event_paranoid")
	local v = f and tonumber(f:read("l")) or 2
	if f then f:close() end
	return v
end

describe("privileges #kernel #matrix", function()
	for _, mode in ipairs(modes) do
		local second = needs[mode]
		local NAME = "CAP_" .. second:upper()

		it(mode .. ": with no capabilities, names CAP_BPF and " .. NAME, function()
			local out = open_with("-all", mode)
			assert.matches("^FAIL 1 EPERM: " .. mode .. " mode needs CAP_BPF and " .. NAME ..
				"; missing CAP_BPF and " .. NAME, out)
		end)
		it(mode .. ": with CAP_BPF only, names " .. NAME, function()
			local out = open_with("-all,+bpf", mode)
			assert.matches("^FAIL 1 EPERM: .*; missing " .. NAME .. ": run as root", out)
		end)
		it(mode .. ": with CAP_BPF and " .. NAME .. ", opens", function()
			local out = open_with("-all,+bpf,+" .. second, mode)
			if mode == "kprobe" and paranoid() > 2 then
				-- Debian's perf_event_paranoid=3 asks CAP_SYS_ADMIN for any perf
				-- event, kprobes included: the error must say so
				assert.matches("^FAIL 13 EACCES: kprobe: .*kernel.perf_event_paranoid is 3 %(a Debian setting%)", out)
				out = open_with("-all,+bpf,+perfmon,+sys_admin", mode)
			end
			assert.equals("OK " .. mode .. "\n", out)
		end)
	end
end)
