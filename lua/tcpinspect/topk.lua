-- SPDX-License-Identifier: GPL-2.0-only
--- tcpinspect.topk: the k largest entries of a kernel map or a Lua table.
--
--     local topk = require "tcpinspect.topk"
--     for i, e in ipairs(topk.top(s:map("sources"), 5, "bytes")) do
--       print(i, e.key.saddr, e.value.bytes)
--     end
--     topk.top({ a = 3, b = 7, c = 5 }, 2)         --> {{key="b", value=7}, {key="c", value=5}}
--     topk.top(t, 10, { "bytes", "packets" })      -- by bytes, then by packets
--     topk.top(t, 10, function(k, v) return v.bytes / v.packets end)
--
-- Ties are broken by the next field, then by the key's text, so the order
-- is the same on every run.  Memory is O(k), time O(n log k): only the k
-- best entries are kept while the map is read.
-- @module tcpinspect.topk
local M = {}

-- A key's text, for breaking ties: tables are written as k=v pairs in key order.
local function keytext(k)
	if type(k) ~= "table" then return tostring(k) end
	local names = {}
	for name in pairs(k) do names[#names + 1] = tostring(name) end
	table.sort(names)
	for i, name in ipairs(names) do names[i] = name .. "=" .. tostring(k[name]) end
	return table.concat(names, ",")
end
M.keytext = keytext

-- by -> function(key, value) returning a list of numbers, most significant first
local function scorer(by)
	if by == nil then
		return function(_, v) return { v } end
	elseif type(by) == "string" then
		return function(_, v) return { v[by] or 0 } end
	elseif type(by) == "table" then
		return function(_, v)
			local s = {}
			for i, f in ipairs(by) do s[i] = v[f] or 0 end
			return s
		end
	elseif type(by) == "function" then
		return function(k, v) return { by(k, v) } end
	end
	error("tcpinspect.topk: 'by' must be a field name, a list of names or a function, got " .. type(by), 3)
end

-- true when a ranks before b
local function better(a, b)
	for i = 1, #a.score do
		if a.score[i] ~= b.score[i] then return a.score[i] > b.score[i] end
	end
	return a.tie < b.tie
end

--- The k best entries.
-- @param src a tcpinspect map (anything with `:pairs()`) or a Lua table
-- @tparam integer k how many (>= 1)
-- @param[opt] by a value field name, a list of names (tie-breakers), or
--   `function(key, value) -> number`; default: the value itself
-- @treturn table a list of {key=, value=, score=} best first
function M.top(src, k, by)
	if math.type(k) ~= "integer" or k < 1 then
		error("tcpinspect.topk: k must be an integer >= 1, got " .. tostring(k), 2)
	end
	local score = scorer(by)
	local iter, state, init
	if type(src) == "userdata" or type(src) == "table" and type(src.pairs) == "function" then
		iter, state, init = src:pairs() -- a tcpinspect map, a counter, ...
	else
		iter, state, init = pairs(src)
	end
	-- a min-heap of the k best so far: heap[1] is the worst kept
	local heap, n = {}, 0
	local function worse(i, j) return better(heap[j], heap[i]) end
	local function up(i)
		while i > 1 do
			local p = i // 2
			if not worse(i, p) then break end
			heap[i], heap[p] = heap[p], heap[i]
			i = p
		end
	end
	local function down(i)
		while true do
			local l, r, m = 2 * i, 2 * i + 1, i
			if l <= n and worse(l, m) then m = l end
			if r <= n and worse(r, m) then m = r end
			if m == i then return end
			heap[i], heap[m] = heap[m], heap[i]
			i = m
		end
	end
	for key, value in iter, state, init do
		local e = { key = key, value = value, score = score(key, value) }
		e.tie = keytext(key)
		if n < k then
			n = n + 1
			heap[n] = e
			up(n)
		elseif better(e, heap[1]) then
			heap[1] = e
			down(1)
		end
	end
	table.sort(heap, better)
	for _, e in ipairs(heap) do
		e.tie = nil
		if #e.score == 1 then e.score = e.score[1] end
	end
	return heap
end

local Counter = {}
Counter.__index = Counter

--- Add n (default 1) to key's count.
function Counter:add(key, n)
	local t = self.t
	if t[key] == nil then self.size = self.size + 1 end
	t[key] = (t[key] or 0) + (n or 1)
	return t[key]
end

--- The count of a key (0 if never added).
function Counter:get(key)
	return self.t[key] or 0
end

--- The k largest counts, as topk.top returns them.
function Counter:top(k)
	return M.top(self.t, k)
end

--- Iterate over key, count.
function Counter:pairs()
	return pairs(self.t)
end

--- Forget everything.
function Counter:reset()
	self.t, self.size = {}, 0
end

--- A counter of keys (strings or numbers): `c:add(p.saddr)`, `c:top(10)`.
-- @treturn counter
function M.counter()
	return setmetatable({ t = {}, size = 0 }, Counter)
end

return M
