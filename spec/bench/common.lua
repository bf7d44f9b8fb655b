-- SPDX-License-Identifier: GPL-2.0-only
-- spec/bench/common.lua: helpers shared by the benchmarks (make bench).
-- Ratios and per-event costs only: the machine is shared and noisy, so no
-- absolute time ever decides pass or fail here.
local M = {}

local core = require "tcpinspect.core"
M.now = core.monotonic

--- An Ethernet + IPv4 + TCP frame: dst MAC 00:00:00:00:00:00, which is lo's
-- address, so BPF_PROG_TEST_RUN (eth_type_trans on lo) marks it PACKET_HOST.
function M.frame(opts)
	opts = opts or {}
	local payload = opts.payload or ""
	local ip = string.pack(">BBI2I2I2BBI2c4c4", 0x45, 0, 40 + #payload, 1, 0, 64, 6, 0,
		"\127\0\0\1", "\127\0\0\1")
	local tcp = string.pack(">I2I2I4I4BBI2I2I2", opts.sport or 40000, opts.dport or 9,
		1, 0, 0x50, opts.flags or 0x02, 65535, 0, 0)
	return string.rep("\0", 12) .. "\8\0" .. ip .. tcp .. payload
end

--- /proc/self/status fields we report (kB and counts).
function M.status()
	local t = {}
	for line in io.lines("/proc/self/status") do
		local k, v = line:match("^([%w_]+):%s+(%d+)")
		if k then t[k] = tonumber(v) end
	end
	return t
end

--- Sum of the "IWI" (IRQ work interrupts) row of /proc/interrupts: the
-- ring buffer's forced wakeups are delivered through irq_work.
function M.irq_work()
	local n = 0
	for line in io.lines("/proc/interrupts") do
		local rest = line:match("^%s*IWI:(.*)")
		if rest then
			for d in rest:gmatch("%d+") do n = n + tonumber(d) end
			-- stop before the description text
			return n
		end
	end
	return n
end

function M.median(t)
	local c = {}
	for i, v in ipairs(t) do c[i] = v end
	table.sort(c)
	local n = #c
	if n == 0 then return 0 / 0 end
	if n % 2 == 1 then return c[(n + 1) // 2] end
	return (c[n // 2] + c[n // 2 + 1]) / 2
end

function M.shuffle(t)
	for i = #t, 2, -1 do
		local j = math.random(i)
		t[i], t[j] = t[j], t[i]
	end
	return t
end

function M.env_num(name, default)
	local v = tonumber(os.getenv(name) or "")
	return v or default
end

--- Format a number with a unit prefix: 1234567 -> "1.23 M".
function M.si(x)
	if x ~= x then return "n/a" end
	if x >= 1e6 then return string.format("%.2f M", x / 1e6) end
	if x >= 1e3 then return string.format("%.1f k", x / 1e3) end
	return string.format("%.0f", x)
end

--- Print rows as an aligned table. cols: list of {key, title, fmt}.
function M.table(cols, rows)
	local w = {}
	local cells = {}
	for i, c in ipairs(cols) do w[i] = #c[2] end
	for r, row in ipairs(rows) do
		cells[r] = {}
		for i, c in ipairs(cols) do
			local v = row[c[1]]
			local s
			if v == nil then s = "-"
			elseif type(c[3]) == "function" then s = c[3](v)
			elseif c[3] then s = string.format(c[3], v)
			else s = tostring(v) end
			cells[r][i] = s
			if #s > w[i] then w[i] = #s end
		end
	end
	local function line(vals)
		local parts = {}
		for i, s in ipairs(vals) do
			parts[i] = (i == 1) and (s .. string.rep(" ", w[i] - #s))
				or (string.rep(" ", w[i] - #s) .. s)
		end
		print("  " .. table.concat(parts, "  "))
	end
	local titles = {}
	for i, c in ipairs(cols) do titles[i] = c[2] end
	line(titles)
	local dashes = {}
	for i in ipairs(cols) do dashes[i] = string.rep("-", w[i]) end
	line(dashes)
	for r in ipairs(rows) do line(cells[r]) end
end

return M
