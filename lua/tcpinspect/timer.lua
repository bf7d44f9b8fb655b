-- SPDX-License-Identifier: GPL-2.0-only
--- tcpinspect.timer: interval and one-shot timers on the session loop.
--
--     local timer = require "tcpinspect.timer"
--     local t = timer.new()
--     t:every(1, function(now) print("each second", now) end)
--     t:every(5, function(now) print("each 5 s", now) end)
--     t:after(30, function() s:stop() end)
--     s:run(t:run_options{ duration = 60 })
--
-- A scheduler holds any number of timers with different periods.  It does
-- not wait by itself: `tick()` runs the timers that are due, and
-- `run_options` makes `session:run` call it after every poll and wake up at
-- least as often as the shortest period (and every `poll_ms`), so a timer
-- fires within `poll_ms` of its time.  A timer that falls behind (a slow
-- callback, a stopped process) fires once and then keeps its phase: it does
-- not fire again to catch up.  Callbacks get the scheduler's elapsed time in
-- seconds and the timer.
-- @module tcpinspect.timer
local M = {}

local Scheduler = {}
Scheduler.__index = Scheduler

local Timer = {}
Timer.__index = Timer

--- Stop the timer; it will not fire again.
function Timer:cancel()
	if not self.cancelled then
		self.cancelled = true
		self.sched:_remove(self)
	end
end

local function check_period(name, seconds)
	if type(seconds) ~= "number" or seconds <= 0 or seconds ~= seconds then
		error(string.format("tcpinspect.timer: %s: expected seconds > 0, got %s", name, tostring(seconds)), 3)
	end
end

--- The clock schedulers and metric rates use by default: tcpinspect.monotonic,
-- or os.clock where the core cannot be loaded.
-- @treturn function seconds
function M.default_clock()
	local ok, ti = pcall(require, "tcpinspect")
	return ok and ti.monotonic or os.clock
end

--- A new scheduler.
-- @tparam[opt] table opts clock: a function returning seconds (default
--   tcpinspect.monotonic, or os.clock without the core)
-- @treturn scheduler
function M.new(opts)
	opts = opts or {}
	local clock = opts.clock or M.default_clock()
	local self = setmetatable({ clock = clock, timers = {}, seq = 0 }, Scheduler)
	self.start = clock()
	return self
end

function Scheduler:_add(period, fn, repeating, name)
	check_period(name, period)
	if type(fn) ~= "function" then
		error("tcpinspect.timer: " .. name .. ": expected a function, got " .. type(fn), 3)
	end
	self.seq = self.seq + 1
	local t = setmetatable({ sched = self, period = period, fn = fn, repeating = repeating,
		due = self.clock() + period, order = self.seq }, Timer)
	self.timers[#self.timers + 1] = t
	return t
end

function Scheduler:_remove(t)
	for i, x in ipairs(self.timers) do
		if x == t then
			table.remove(self.timers, i)
			return
		end
	end
end

--- Call fn every `seconds`, first `seconds` from now.
-- @tparam number seconds
-- @tparam function fn function(elapsed, timer)
-- @treturn timer with :cancel()
function Scheduler:every(seconds, fn)
	return self:_add(seconds, fn, true, "every")
end

--- Call fn once, `seconds` from now.
-- @tparam number seconds
-- @tparam function fn function(elapsed, timer)
-- @treturn timer with :cancel()
function Scheduler:after(seconds, fn)
	return self:_add(seconds, fn, false, "after")
end

--- Seconds since the scheduler was made (or since `restart`).
-- @treturn number
function Scheduler:elapsed()
	return self.clock() - self.start
end

--- Start counting elapsed time (and every timer's period) from now.
function Scheduler:restart()
	local now = self.clock()
	self.start = now
	for _, t in ipairs(self.timers) do t.due = now + t.period end
end

-- The smallest value of field over the timers (nil without timers).
local function least(timers, field)
	local best
	for _, t in ipairs(timers) do
		if not best or t[field] < best then best = t[field] end
	end
	return best
end

--- When the next timer is due (clock seconds), or nil without timers.
-- @treturn number|nil
function Scheduler:next_due()
	return least(self.timers, "due")
end

--- The shortest period of the timers (nil without timers).
-- @treturn number|nil
function Scheduler:shortest()
	return least(self.timers, "period")
end

--- Run every timer that is due, earliest first (in creation order when due
-- at the same time).  Timers added by a callback wait for their own time.
-- @tparam[opt] number now the clock (default: read it)
-- @treturn integer how many callbacks ran
function Scheduler:tick(now)
	now = now or self.clock()
	local due = {}
	for _, t in ipairs(self.timers) do
		if t.due <= now then due[#due + 1] = t end
	end
	if #due == 0 then return 0 end
	table.sort(due, function(a, b)
		if a.due ~= b.due then return a.due < b.due end
		return a.order < b.order
	end)
	for _, t in ipairs(due) do
		if not t.cancelled then
			if t.repeating then
				-- keep the phase; skip the periods already missed
				local missed = math.floor((now - t.due) / t.period)
				t.due = t.due + (missed + 1) * t.period
			else
				t:cancel()
			end
			t.fn(now - self.start, t)
		end
	end
	return #due
end

--- Options for `session:run` that drive this scheduler: `tick` after every
-- poll, a wakeup at least every shortest period.  Fields of `opts`
-- (duration, poll_ms, interval, on_interval, should_stop) are kept; a given
-- should_stop is still asked.
-- @tparam[opt] table opts
-- @treturn table
function Scheduler:run_options(opts)
	local o = {}
	for k, v in pairs(opts or {}) do o[k] = v end
	local user_stop = o.should_stop
	o.interval = o.interval or math.max(0.01, math.min(self:shortest() or 1, 1))
	o.poll_ms = o.poll_ms or 50
	o.should_stop = function(n)
		self:tick()
		return user_stop ~= nil and user_stop(n) or false
	end
	return o
end

return M
