-- SPDX-License-Identifier: GPL-2.0-only
--- tcpinspect.hist: power-of-two and linear histograms, printed like
-- bpftrace's `hist()` and `lhist()`.
--
--     local hist = require "tcpinspect.hist"
--     local h = hist.log2()
--     s:on_packet(function(p) h:add(p.len) end)
--     ...
--     print(h)
--     -- [0]                    7 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|
--     -- [1]                    0 |                                                    |
--     -- [2, 4)                 1 |@@@@@@@                                             |
--
--     print(hist.from_map(s:map("len_hist")))   -- the in-kernel payload histogram
--
-- Only the rows from the first to the last non-empty bucket are printed, as
-- bpftrace does; an empty histogram prints as "" (nothing).
-- @module tcpinspect.hist
local M = {}

local floor, sformat, srep = math.floor, string.format, string.rep

local BAR = 52 -- bpftrace's bar width

-- bpftrace's bucket labels: 1024 -> "1K", 3072 -> "3K", 1000 -> "1000"
local function label(n)
	local suffixes = { "K", "M", "G", "T", "P" }
	local i = 0
	while n ~= 0 and n % 1024 == 0 and i < #suffixes do
		n, i = n // 1024, i + 1
	end
	return i > 0 and sformat("%d%s", n, suffixes[i]) or sformat("%d", n)
end
M.label = label

local function row(head, count, max)
	local w = max > 0 and floor(count / max * BAR) or 0
	return sformat("%-16s%8d |%s%s|", head, count, srep("@", w), srep(" ", BAR - w))
end

local Hist = {}
Hist.__index = Hist

--- Add a value (count times, default once).
-- @tparam number v
-- @tparam[opt=1] integer count
function Hist:add(v, count)
	count = count or 1
	local i = self:bucket(v)
	self.counts[i] = (self.counts[i] or 0) + count
	self.total = self.total + count
	if self.lo == nil or i < self.lo then self.lo = i end
	if self.hi == nil or i > self.hi then self.hi = i end
	return self
end

--- The number of values added.
-- @treturn integer
function Hist:count()
	return self.total
end

--- The count in the bucket holding v.
-- @tparam number v
-- @treturn integer
function Hist:get(v)
	return self.counts[self:bucket(v)] or 0
end

--- The non-empty range of buckets, as a list of {label=, low=, high=, count=}
-- (high is exclusive; nil for an open-ended bucket).
-- @treturn table
function Hist:buckets()
	local out = {}
	if not self.lo then return out end
	for i = self.lo, self.hi do
		local low, high = self:range(i)
		out[#out + 1] = { label = self:head(i), low = low, high = high, count = self.counts[i] or 0 }
	end
	return out
end

--- Forget every value.
function Hist:reset()
	self.counts, self.total, self.lo, self.hi = {}, 0, nil, nil
	return self
end

--- The histogram as bpftrace prints it, one line per bucket, each ending
-- with "\n".  With a title, a first line "@title:" as in bpftrace.
-- @tparam[opt] string title
-- @treturn string
function Hist:render(title)
	if not self.lo then return title and ("@" .. title .. ":\n") or "" end
	local max = 0
	for i = self.lo, self.hi do
		local c = self.counts[i] or 0
		if c > max then max = c end
	end
	local out = {}
	if title then out[1] = "@" .. title .. ":" end
	for i = self.lo, self.hi do
		out[#out + 1] = row(self:head(i), self.counts[i] or 0, max)
	end
	return table.concat(out, "\n") .. "\n"
end
Hist.__tostring = Hist.render

-- ---- log2 ----------------------------------------------------------------
-- Buckets: -1 for negatives, 0 for 0, k >= 1 for [2^(k-1), 2^k): the same
-- slots as the in-kernel len_hist map.

local Log2 = setmetatable({}, { __index = Hist })
Log2.__index = Log2
Log2.__tostring = Hist.render

function Log2.bucket(_, v)
	if v < 0 then return -1 end
	v = floor(v)
	if v == 0 then return 0 end
	local k = 0
	while v > 0 do
		v, k = v >> 1, k + 1
	end
	return k
end

function Log2.range(_, i)
	if i < 0 then return nil, 0 end
	if i == 0 then return 0, 1 end
	return 1 << (i - 1), 1 << i
end

function Log2.head(_, i)
	if i < 0 then return "(..., 0)" end
	if i == 0 then return "[0]" end
	if i == 1 then return "[1]" end
	return sformat("[%s, %s)", label(1 << (i - 1)), label(1 << i))
end

--- A power-of-two histogram (bpftrace's `hist()`).
-- @treturn hist
function M.log2()
	return setmetatable({ counts = {}, total = 0 }, Log2)
end

--- A log2 histogram filled from the kernel's `len_hist` map (or anything
-- whose `:pairs()` yields {slot=} keys and {count=} values).
-- @param map `s:map("len_hist")`
-- @treturn hist
function M.from_map(map)
	local h = M.log2()
	for k, v in map:pairs() do
		if v.count > 0 then
			h:add(k.slot == 0 and 0 or 1 << (k.slot - 1), v.count)
		end
	end
	return h
end

-- ---- linear ----------------------------------------------------------------
-- Buckets: 0 for v < min, i >= 1 for [min + (i-1)*step, min + i*step),
-- last for v >= max.

local Linear = setmetatable({}, { __index = Hist })
Linear.__index = Linear
Linear.__tostring = Hist.render

function Linear:bucket(v)
	if v < self.min then return 0 end
	if v >= self.max then return self.nbuckets + 1 end
	return floor((v - self.min) / self.step) + 1
end

function Linear:range(i)
	if i == 0 then return nil, self.min end
	if i == self.nbuckets + 1 then return self.max, nil end
	return self.min + (i - 1) * self.step, math.min(self.min + i * self.step, self.max)
end

function Linear:head(i)
	if i == 0 then return sformat("(..., %s)", label(self.min)) end
	if i == self.nbuckets + 1 then return sformat("[%s, ...)", label(self.max)) end
	local lo, hi = self:range(i)
	return sformat("[%s, %s)", label(lo), label(hi))
end

--- A linear histogram (bpftrace's `lhist(v, min, max, step)`).
-- @tparam integer min
-- @tparam integer max
-- @tparam integer step
-- @treturn hist
function M.linear(min, max, step)
	if math.type(min) ~= "integer" or math.type(max) ~= "integer" or math.type(step) ~= "integer" then
		error("tcpinspect.hist.linear: min, max and step must be integers", 2)
	end
	if step <= 0 or max <= min then
		error(sformat("tcpinspect.hist.linear: need min < max and step > 0, got %d, %d, %d", min, max, step), 2)
	end
	return setmetatable({ counts = {}, total = 0, min = min, max = max, step = step,
		nbuckets = (max - min + step - 1) // step }, Linear)
end

return M
