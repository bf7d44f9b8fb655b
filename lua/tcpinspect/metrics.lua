-- SPDX-License-Identifier: GPL-2.0-only
--- tcpinspect.metrics: Prometheus metrics with bounded cardinality.
--
--     local metrics = require "tcpinspect.metrics"
--     local reg = metrics.registry{ max_series = 100 }
--     local alerts = reg:counter("syn_flood_alerts_total", { "src" }, "SYN flood alerts")
--     alerts:inc("10.0.0.7")                  -- one label: its value
--     alerts:inc({ src = "10.0.0.8" }, 2)     -- or a table, by name or position
--     local h = reg:histogram("rtt_seconds", nil, { buckets = { 0.001, 0.01, 0.1, 1 } })
--     h:observe(0.004)
--     io.write(reg:render())                  -- Prometheus text format 0.0.4
--
-- Every labelled family keeps at most `max_series` label values as series
-- of their own; the others are folded into one series whose labels are all
-- "other", so sums over a family stay exact.  Which values are kept is
-- decided by rate: each value has a score, its increments decayed
-- exponentially (time constant `tau`, 30 s), and for gauges the absolute
-- value.  A value is kept on first sight while there is room; after that a
-- folded value replaces the weakest kept one only when its score beats it
-- by `margin` (25%), checked when the registry is rendered (`update`).  So
-- a kept set changes only when the traffic really changes, and equal
-- challengers never flap.
--
-- Counters stay monotonic through the changes: a value that is promoted
-- starts its own series at 0 (what it counted while folded stays in
-- "other"), and a value that is demoted adds its series to "other".  A
-- counter series therefore counts from the moment its value was kept; a
-- value kept from its first increment (always, until the family is full)
-- shows its whole total.  Gauges fold by sum.
-- `<prefix>folded_values{metric="NAME"}` (see `render`) reports how many
-- label values each family folds now.
--
-- Gauges forget: a label value of a labelled gauge that was not set (set,
-- inc, dec) for `gauge_ttl` seconds (default 300, Prometheus's staleness
-- window) is dropped at the next render, kept or folded, so a gauge family
-- remembers only the values set in the last `gauge_ttl` seconds (counters'
-- folded values are forgotten once their decayed rate is nothing).
-- Families made with `uncapped` (info gauges, set once) keep theirs.
--
-- Label values are text in UTF-8: invalid sequences are replaced with
-- U+FFFD (as the Prometheus client libraries do) before the value is used,
-- so the exposition is always valid; label sets are keyed by their values'
-- lengths and bytes, so no two sets share a series.
-- @module tcpinspect.metrics
local M = {}

M.DEFAULT_MAX_SERIES = 100
M.TAU = 30       -- seconds: time constant of the scores
M.MARGIN = 0.25  -- a challenger must beat the weakest kept value by 25%
M.PRUNE = 1e-3   -- folded values whose score decayed below this are forgotten
M.DEFAULT_BUCKETS = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 }
M.OTHER = "other"
M.GAUGE_TTL = 300 -- seconds: a gauge value not set for this long is dropped

local NAME_RE = "^[%a_:][%w_:]*$"
local LABEL_RE = "^[%a_][%w_]*$"

-- ---- text format helpers -------------------------------------------------------

--- s with every invalid UTF-8 sequence (a stray byte, an overlong form, a
-- surrogate, a code point past U+10FFFF) replaced with U+FFFD, one per
-- byte that starts no valid sequence.
function M.valid_utf8(s)
	if utf8.len(s) then return s end
	local out, i = {}, 1
	while true do
		local n, bad = utf8.len(s, i)
		if n then
			out[#out + 1] = s:sub(i)
			break
		end
		out[#out + 1] = s:sub(i, bad - 1)
		out[#out + 1] = "\u{FFFD}"
		i = bad + 1
	end
	return table.concat(out)
end
local valid_utf8 = M.valid_utf8

-- The key of a label set: each value's length, then its bytes, so that
-- {"x\0y", "z"} and {"x", "y\0z"} never share one (a family's label
-- count is fixed: one value is its own key).
local function keyof(values)
	if #values == 1 then return values[1] end
	local parts = {}
	for i, v in ipairs(values) do parts[i] = #v .. ":" .. v end
	return table.concat(parts)
end

local function escape_label(v)
	return (v:gsub("[\\\"\n]", { ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n" }))
end

local function escape_help(v)
	return (valid_utf8(v):gsub("[\\\n]", { ["\\"] = "\\\\", ["\n"] = "\\n" }))
end

--- A sample value in the text format: integers without a decimal point,
-- +Inf, -Inf, NaN.
function M.number(v)
	if v ~= v then return "NaN" end
	if v == math.huge then return "+Inf" end
	if v == -math.huge then return "-Inf" end
	if math.type(v) == "integer" then return tostring(v) end
	if v == math.floor(v) and math.abs(v) < 2 ^ 53 then return string.format("%d", v) end
	local t = string.format("%.15g", v)
	if tonumber(t) == v then return t end
	return string.format("%.17g", v)
end
local number = M.number

local function labelstr(names, values, extra_name, extra_value)
	local parts = {}
	for i, n in ipairs(names) do parts[#parts + 1] = n .. '="' .. escape_label(values[i]) .. '"' end
	if extra_name then parts[#parts + 1] = extra_name .. '="' .. escape_label(extra_value) .. '"' end
	if #parts == 0 then return "" end
	return "{" .. table.concat(parts, ",") .. "}"
end

-- ---- families --------------------------------------------------------------------

local Family = {}
Family.__index = Family

local function new_series(self, values)
	local s = { values = values, v = 0 }
	if self.type == "histogram" then
		s.counts, s.sum, s.count = {}, 0, 0
		for i = 1, #self.buckets + 1 do s.counts[i] = 0 end
	end
	return s
end

-- key string and label values of a labels argument
function Family:_key(labels, level)
	local names = self.labelnames
	local n = #names
	local values = {}
	local tl = type(labels)
	if tl == "string" or tl == "number" then
		if n ~= 1 then
			error(("metrics: %s has %d labels (%s): pass a table"):format(self.name, n,
				table.concat(names, ", ")), level)
		end
		values[1] = valid_utf8(tostring(labels))
	elseif tl == "table" then
		for i, name in ipairs(names) do
			local v = labels[name]
			if v == nil then v = labels[i] end
			if v == nil then
				error(("metrics: %s: label '%s' missing"):format(self.name, name), level)
			end
			values[i] = valid_utf8(tostring(v))
		end
	elseif n > 0 then
		error(("metrics: %s: expected label values for %s, got %s"):format(self.name,
			table.concat(names, ", "), tl), level)
	end
	return keyof(values), values
end

-- the series of a key: a kept one, or nil when the key is folded (admits
-- the key while there is room)
function Family:_series(key, values)
	local s = self.kept[key]
	if s then return s end
	if self.nolabels then
		s = new_series(self, values)
		self.kept[key], self.nkept = s, 1
		return s
	end
	local info = self.info[key]
	if not info then
		info = { values = values, score = 0, pending = 0, t = self.reg.clock() }
		self.info[key] = info
	end
	local leader = self.leader
	if leader then
		if leader.kept[key] then
			s = new_series(self, values)
			self.kept[key] = s
			self.nkept = self.nkept + 1
			return s
		end
		return nil
	end
	if key ~= self.otherkey and self.nkept < self.max and not info.was_folded then
		s = new_series(self, values)
		self.kept[key] = s
		self.nkept = self.nkept + 1
		return s
	end
	info.was_folded = true
	return nil
end

function Family:_other()
	if not self.other then
		local values = {}
		for i = 1, #self.labelnames do values[i] = M.OTHER end
		self.other = new_series(self, values)
	end
	return self.other
end

local function check_amount(self, n, what)
	if type(n) ~= "number" or n ~= n then
		error(("metrics: %s:%s: expected a number, got %s"):format(self.name, what, tostring(n)), 3)
	end
end

-- split (labels, n) arguments: families without labels take n first
function Family:_args(a, b)
	if self.nolabels then return nil, a end
	return a, b
end

--- Counters: add n (default 1, >= 0).  `c:inc(labels, n)`, or `c:inc(n)`
-- without labels.
function Family:inc(a, b)
	local labels, n = self:_args(a, b)
	if n == nil then n = 1 end
	check_amount(self, n, "inc")
	if self.type == "counter" and n < 0 then
		error(("metrics: %s: a counter only goes up (inc %s)"):format(self.name, tostring(n)), 2)
	end
	if self.type == "histogram" then error("metrics: " .. self.name .. ": a histogram takes observe()", 2) end
	local key, values = self:_key(labels, 3)
	local s = self:_series(key, values)
	if self.type == "gauge" then
		self:_touch(key)
		if s then
			s.v = s.v + n
		else
			local info = self.info[key]
			info.val = (info.val or 0) + n
		end
		return
	end
	if s then s.v = s.v + n else self:_other().v = self:_other().v + n end
	local info = self.info[key]
	if info then info.pending = info.pending + n end
end

--- Gauges: subtract n (default 1).
function Family:dec(a, b)
	local labels, n = self:_args(a, b)
	if n == nil then n = 1 end
	check_amount(self, n, "dec")
	if self.type ~= "gauge" then error("metrics: " .. self.name .. ": only a gauge has dec()", 2) end
	if self.nolabels then return self:inc(-n) end
	return self:inc(labels, -n)
end

--- Gauges: set the value.  `g:set(labels, v)`, or `g:set(v)` without labels.
function Family:set(a, b)
	local labels, v = self:_args(a, b)
	check_amount(self, v, "set")
	if self.type ~= "gauge" then error("metrics: " .. self.name .. ": only a gauge has set()", 2) end
	local key, values = self:_key(labels, 3)
	local s = self:_series(key, values)
	self:_touch(key)
	if s then s.v = v else self.info[key].val = v end
end

-- a gauge's value was set now (labelled gauges with a ttl)
function Family:_touch(key)
	local info = self.ttl and self.info[key]
	if info then info.set_at = self.reg.clock() end
end

--- Counters fed from absolute totals (a kernel map): the increment since
-- the last total given for this key is added (a total that went down, a
-- re-created map entry, counts whole).
function Family:set_total(labels, total)
	check_amount(self, total, "set_total")
	if self.type ~= "counter" then error("metrics: " .. self.name .. ": set_total is for counters", 2) end
	local key, values = self:_key(labels, 3)
	local last = self.last[key]
	local d = total
	if last and total >= last then d = total - last end
	self.last[key] = total
	self.present[key] = true
	if d > 0 or not self.kept[key] then
		local s = self:_series(key, values)
		if s then s.v = s.v + d else self:_other().v = self:_other().v + d end
		local info = self.info[key]
		if info then info.pending = info.pending + d end
	end
end

--- Histograms: count one observation (or `n` of them) of value v.
-- `h:observe(labels, v[, n])`, or `h:observe(v[, n])` without labels.
function Family:observe(a, b, c)
	local labels, v, n
	if self.nolabels then v, n = a, b else labels, v, n = a, b, c end
	n = n or 1
	check_amount(self, v, "observe")
	if self.type ~= "histogram" then error("metrics: " .. self.name .. ": only a histogram has observe()", 2) end
	local key, values = self:_key(labels, 3)
	local s = self:_series(key, values) or self:_other()
	local bk = self.buckets
	local i = 1
	while i <= #bk and v > bk[i] do i = i + 1 end
	s.counts[i] = s.counts[i] + n
	s.sum = s.sum + v * n
	s.count = s.count + n
	local info = self.info[key]
	if info then info.pending = info.pending + n end
end

--- Histograms without labels, fed from known bucket counts (the kernel's
-- len_hist): counts per bucket (not cumulative, #buckets + 1 with +Inf),
-- and the sum of the observed values.
function Family:set_buckets(counts, sum)
	if self.type ~= "histogram" or not self.nolabels then
		error("metrics: " .. self.name .. ": set_buckets is for histograms without labels", 2)
	end
	local s = self:_series("", {})
	local total = 0
	for i = 1, #self.buckets + 1 do
		s.counts[i] = counts[i] or 0
		total = total + s.counts[i]
	end
	s.sum, s.count = sum, total
end

--- Forget the keys that left an absolute source (a kernel map) since the
-- last call: their totals restart if they come back.
function Family:sweep_totals()
	for key in pairs(self.last) do
		if not self.present[key] then
			self.last[key] = nil
			if not self.kept[key] then self.info[key] = nil end
		end
	end
	self.present = {}
end

-- fold a kept series into "other"
local function fold(self, key)
	local s = self.kept[key]
	self.kept[key] = nil
	self.nkept = self.nkept - 1
	local info = self.info[key]
	if info then info.was_folded = true end
	if self.type == "gauge" then
		if info then info.val = s.v end
		return
	end
	local o = self:_other()
	o.v = o.v + s.v
	if self.type == "histogram" then
		for i = 1, #s.counts do o.counts[i] = o.counts[i] + s.counts[i] end
		o.sum, o.count = o.sum + s.sum, o.count + s.count
	end
end

local function promote(self, key)
	local info = self.info[key]
	local s = new_series(self, info.values)
	if self.type == "gauge" then
		s.v = info.val or 0
		info.val = nil
	end
	self.kept[key] = s
	self.nkept = self.nkept + 1
end

--- Bring scores up to `now` and rebalance the kept set.
function Family:update(now)
	if self.nolabels then return end
	local decay_tau = self.reg.tau
	for key, info in pairs(self.info) do
		if self.ttl and now - (info.set_at or now) > self.ttl then
			-- a gauge value not set for ttl seconds: forgotten
			if self.kept[key] then
				self.kept[key] = nil
				self.nkept = self.nkept - 1
			end
			self.info[key] = nil
		elseif self.type == "gauge" then
			local s = self.kept[key]
			info.score = math.abs(s and s.v or info.val or 0)
		else
			local dt = now - info.t
			if dt > 0 then info.score = info.score * math.exp(-dt / decay_tau) end
			info.score = info.score + info.pending
			info.pending, info.t = 0, now
			if not self.kept[key] and info.score < M.PRUNE and not self.last[key] then
				self.info[key] = nil
			end
		end
	end
	if self.leader then
		for key in pairs(self.kept) do
			if not self.leader.kept[key] then fold(self, key) end
		end
		for key in pairs(self.leader.kept) do
			if not self.kept[key] and self.info[key] then promote(self, key) end
		end
		return
	end
	local info = self.info
	local function better(a, b) -- score desc, key asc
		local sa, sb = info[a].score, info[b].score
		if sa ~= sb then return sa > sb end
		return a < b
	end
	local challengers, weakest = {}, {}
	for key in pairs(info) do
		if self.kept[key] then
			weakest[#weakest + 1] = key
		elseif key ~= self.otherkey and info[key].score > 0 then
			challengers[#challengers + 1] = key
		end
	end
	if #challengers == 0 then return end
	table.sort(challengers, better)
	table.sort(weakest, function(a, b) return better(b, a) end)
	local wi = 1
	for _, c in ipairs(challengers) do
		if self.nkept < self.max then
			promote(self, c)
		else
			local w = weakest[wi]
			if not w or info[c].score <= info[w].score * (1 + self.reg.margin) then break end
			fold(self, w)
			promote(self, c)
			wi = wi + 1
		end
	end
end

--- Number of label values folded into "other" now.
function Family:folded()
	local n = 0
	for key, info in pairs(self.info) do
		if not self.kept[key] and (info.was_folded or self.leader) then n = n + 1 end
	end
	return n
end

local function sorted_keys(t)
	local ks = {}
	for k in pairs(t) do ks[#ks + 1] = k end
	table.sort(ks)
	return ks
end

function Family:_render(out)
	out[#out + 1] = "# HELP " .. self.name .. " " .. escape_help(self.help)
	out[#out + 1] = "# TYPE " .. self.name .. " " .. self.type
	local list = {}
	for _, k in ipairs(sorted_keys(self.kept)) do list[#list + 1] = self.kept[k] end
	-- in the order of their values (the keys start with lengths)
	table.sort(list, function(a, b)
		local va, vb = a.values, b.values
		for i = 1, #va do
			if va[i] ~= vb[i] then return va[i] < vb[i] end
		end
		return false
	end)
	if self.type == "gauge" and not self.nolabels then
		local sum, any = 0, false
		for key, info in pairs(self.info) do
			if not self.kept[key] and info.val then sum, any = sum + info.val, true end
		end
		if any then
			self:_other().v = sum
		elseif self.other then
			self.other.v = 0
		end
	end
	if self.other then list[#list + 1] = self.other end
	local names = self.labelnames
	for _, s in ipairs(list) do
		if self.type == "histogram" then
			local cum = 0
			for i, le in ipairs(self.buckets) do
				cum = cum + s.counts[i]
				out[#out + 1] = self.name .. "_bucket" .. labelstr(names, s.values, "le", number(le)) .. " " .. number(cum)
			end
			out[#out + 1] = self.name .. "_bucket" .. labelstr(names, s.values, "le", "+Inf") .. " " .. number(s.count)
			out[#out + 1] = self.name .. "_sum" .. labelstr(names, s.values) .. " " .. number(s.sum)
			out[#out + 1] = self.name .. "_count" .. labelstr(names, s.values) .. " " .. number(s.count)
		else
			out[#out + 1] = self.name .. labelstr(names, s.values) .. " " .. number(s.v)
		end
	end
end

-- ---- registry ----------------------------------------------------------------------

local Registry = {}
Registry.__index = Registry

--- A registry.
-- @tparam[opt] table opts max_series (default 100), prefix for its own
--   metrics (default "tcpinspect_"), clock (seconds; default
--   tcpinspect.monotonic or os.clock), tau, margin
-- @treturn registry
function M.registry(opts)
	opts = opts or {}
	local clock = opts.clock or require("tcpinspect.timer").default_clock()
	local max = opts.max_series or M.DEFAULT_MAX_SERIES
	if math.type(max) ~= "integer" or max < 1 then
		error("metrics: max_series: expected an integer >= 1, got " .. tostring(max), 2)
	end
	local ttl = opts.gauge_ttl or M.GAUGE_TTL
	if type(ttl) ~= "number" or ttl ~= ttl or ttl <= 0 then
		error("metrics: gauge_ttl: expected seconds > 0, got " .. tostring(ttl), 2)
	end
	return setmetatable({ families = {}, byname = {}, max_series = max, clock = clock,
		prefix = opts.prefix or "tcpinspect_", tau = opts.tau or M.TAU, margin = opts.margin or M.MARGIN,
		gauge_ttl = ttl,
		collectors = {} }, Registry)
end

function Registry:_family(kind, name, labels, opts, level)
	level = (level or 2) + 1
	if type(name) ~= "string" or not name:match(NAME_RE) then
		error(("metrics: bad metric name %s"):format(tostring(name)), level)
	end
	if type(opts) == "string" then opts = { help = opts } end
	opts = opts or {}
	if type(opts) ~= "table" then error("metrics: " .. name .. ": expected a help string or an options table", level) end
	if kind == "counter" and not name:match("_total$") then name = name .. "_total" end
	local fam = self.byname[name]
	if fam then
		if fam.type ~= kind then
			error(("metrics: %s is already a %s"):format(name, fam.type), level)
		end
		return fam
	end
	labels = labels or {}
	if type(labels) == "string" then labels = { labels } end
	if type(labels) ~= "table" then error("metrics: " .. name .. ": labels: expected a list of names", level) end
	local names, seen = {}, {}
	for i, l in ipairs(labels) do
		if type(l) ~= "string" or not l:match(LABEL_RE) or l:match("^__") or seen[l]
			or (kind == "histogram" and l == "le") then
			error(("metrics: %s: bad label name %s"):format(name, tostring(l)), level)
		end
		seen[l] = true
		names[i] = l
	end
	local max = opts.max_series or self.max_series
	if opts.uncapped then max = math.maxinteger end
	local ttl = false
	if kind == "gauge" and #names > 0 and not opts.uncapped then ttl = self.gauge_ttl end
	if opts.ttl ~= nil then ttl = opts.ttl end
	if ttl ~= false and (type(ttl) ~= "number" or ttl ~= ttl or ttl <= 0) then
		error(("metrics: %s: ttl: expected seconds > 0 or false, got %s"):format(name, tostring(ttl)), level)
	end
	if math.type(max) ~= "integer" or max < 1 then
		error(("metrics: %s: max_series: expected an integer >= 1, got %s"):format(name, tostring(max)), level)
	end
	fam = setmetatable({ reg = self, name = name, type = kind, help = opts.help or name,
		labelnames = names, nolabels = #names == 0, max = max, kept = {}, nkept = 0, info = {},
		last = {}, present = {}, leader = opts.follow, uncapped = opts.uncapped,
		ttl = kind == "gauge" and #names > 0 and ttl or false }, Family)
	local ov = {}
	for i = 1, #names do ov[i] = M.OTHER end
	fam.otherkey = keyof(ov)
	if kind == "histogram" then
		local b = opts.buckets or M.DEFAULT_BUCKETS
		fam.buckets = {}
		for i, le in ipairs(b) do
			if type(le) ~= "number" or (i > 1 and le <= b[i - 1]) then
				error(("metrics: %s: buckets must be increasing numbers"):format(name), level)
			end
			if le ~= math.huge then fam.buckets[#fam.buckets + 1] = le end
		end
	end
	self.families[#self.families + 1] = fam
	self.byname[name] = fam
	return fam
end

--- A counter family (a name without `_total` gets it).
-- @tparam string name
-- @tparam[opt] {string,...} labels label names
-- @param[opt] opts a help string, or {help=, max_series=, follow=family,
--   uncapped=true (for a family whose values are known to be few: info)}
function Registry:counter(name, labels, opts) return self:_family("counter", name, labels, opts) end

--- A gauge family (folded values are summed).
function Registry:gauge(name, labels, opts) return self:_family("gauge", name, labels, opts) end

--- A histogram family; opts.buckets (upper bounds, increasing; default
-- Prometheus's .005 to 10).
function Registry:histogram(name, labels, opts) return self:_family("histogram", name, labels, opts) end

--- Call fn(registry) before every render (to read kernel maps, say).
function Registry:on_collect(fn)
	self.collectors[#self.collectors + 1] = fn
end

--- Update scores and kept sets of every family (render calls it).
function Registry:update(now)
	now = now or self.clock()
	for _, fam in ipairs(self.families) do fam:update(now) end
end

--- The text exposition of every family, with the registry's own
-- `<prefix>folded_values{metric=}` gauge when any family has labels.
-- @treturn string
function Registry:render()
	for _, fn in ipairs(self.collectors) do fn(self) end
	self:update()
	local out = {}
	local labelled = {}
	for _, fam in ipairs(self.families) do
		fam:_render(out)
		if not fam.nolabels and not fam.uncapped then labelled[#labelled + 1] = fam end
	end
	if #labelled > 0 then
		local name = self.prefix .. "folded_values"
		if not self.byname[name] then
			out[#out + 1] = "# HELP " .. name .. " Label values folded into the \"other\" series of a family " ..
				"(more values than its --max-series)."
			out[#out + 1] = "# TYPE " .. name .. " gauge"
			for _, fam in ipairs(labelled) do
				out[#out + 1] = name .. '{metric="' .. fam.name .. '"} ' .. fam:folded()
			end
			name = self.prefix .. "max_series"
			out[#out + 1] = "# HELP " .. name .. " The most label values a family keeps as series of their own."
			out[#out + 1] = "# TYPE " .. name .. " gauge"
			for _, fam in ipairs(labelled) do
				out[#out + 1] = name .. '{metric="' .. fam.name .. '"} ' .. fam.max
			end
		end
	end
	out[#out + 1] = ""
	return table.concat(out, "\n")
end

--- Look a family up by name.
function Registry:get(name) return self.byname[name] end

return M
