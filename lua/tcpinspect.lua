-- SPDX-License-Identifier: GPL-2.0-only
--- tcpinspect: every incoming TCP segment, seen from the kernel, in Lua.
--
-- This file is the public API.  It wraps the private C core
-- (`tcpinspect.core`) and adds the loop helpers: `session:run`,
-- `session:stop`, and `session:pollable()`, an object of the
-- `:pollfd()`/`:events()`/`:timeout()` protocol that lets cqueues (or a
-- host's own loop, or luv with `session:fd()`) drive a session.
--
--     local tcpinspect = require "tcpinspect"
--     local s <close> = assert(tcpinspect.open{ filter = { dport = 22 } })
--     s:on_packet(function(p) print(p.saddr, p.sport, p.flagstr, p.len) end)
--     s:run{ duration = 10 }
--
-- @module tcpinspect
local core = require "tcpinspect.core"

local M = {
	_VERSION = "tcpinspect 0.2.0",
	-- TCP flag bits, for `p.flags & tcpinspect.SYN ~= 0`
	FIN = core.FIN, SYN = core.SYN, RST = core.RST, PSH = core.PSH,
	ACK = core.ACK, URG = core.URG, ECE = core.ECE, CWR = core.CWR,
}

--- Load, configure and attach.  See doc/reference.md for every option.
-- @tparam[opt] table opts mode, family, filter, sample, events, aggregates,
--   ring_size, max_flows, wakeup, cgroup, dev, snaplen, netns, container
--   (the list is core.option_names)
-- @treturn[1] session
-- @treturn[2] nil
-- @treturn[2] string message saying what failed and what to do
-- @treturn[2] integer errno
-- (the C function itself, so that a mistake in opts is reported at the
-- caller's line, with no frame of this file in between)
M.open = core.open

--- Replay a capture without root: a session with the same methods and
-- fields as `open`'s, fed by a pcap file instead of the kernel.  Every
-- frame goes through the BPF program's own parse, filter, aggregate and
-- sampling code, built for user space; time is the capture's (`run`'s
-- duration and intervals, `session:now()`, `p.ts`).  See doc/reference.md.
-- @tparam table opts file (required), snaplen, filter, family, sample,
--   events, aggregates, max_flows (the hooks' own options are ignored)
-- @treturn[1] session
-- @treturn[2] nil
-- @treturn[2] string message
-- @treturn[2] integer errno
M.replay = core.replay

--- What this kernel offers, probed for real by loading and attaching.
-- @treturn table btf, fentry, kprobe, ringbuf, tc, tcx, cgroup (booleans),
--   reasons (mode -> why not), kernel (release string)
function M.features()
	return core.features()
end

--- tcpdump-style text for a flags byte: "S", "S.", "F.", "R", "P.".
-- @tparam integer flags
-- @treturn string
M.flagstr = core.flagstr

--- The running kernel's drop reasons (`enum skb_drop_reason` in its BTF), in
-- value order, without the `SKB_DROP_REASON_` prefix.
-- @treturn table a list of names
M.drop_reasons = core.drop_reasons

--- Seconds on CLOCK_MONOTONIC, as a float (the clock of `p.ts`).
-- @treturn number
M.monotonic = core.monotonic

--- Sleep for a number of seconds (a float).
-- @tparam number seconds
M.sleep = core.sleep

--- Become another user, as tcpdump's -Z does once its capture is open:
-- the user's groups (initgroups), then setgid, then setuid, checked (the
-- ids took, root cannot be regained).  Open sessions keep working; files
-- opened afterwards (`session:dump`) belong to the user.
-- @tparam string user
-- @treturn[1] true
-- @treturn[2] nil, "ENOENT: ... no user 'x'" (or EPERM when not root), errno
M.drop_privileges = core.drop_privileges

--- Check open() options without loading anything: raises the same errors
-- as `open` for any mistake.
-- @tparam table opts
-- @treturn true
M.check_options = core.check_options

-- session:run reports each trapped signal once: `signals_reported` is the
-- core's signal count when run last returned "signal" (or signals were
-- trapped), so a later run does not return "signal" for the same one.
local signals_reported = 0

--- Trap signals ("INT", "TERM", "HUP", "QUIT", "USR1", "USR2"): a trapped
-- signal interrupts `poll`'s wait, `session:run` returns with reason
-- "signal" (once per signal), and `signaled()` names it.  Clears any
-- earlier one.
-- @tparam {string,...} names
function M.trap_signals(names)
	core.trap_signals(names)
	signals_reported = core.signal_count()
end

--- The last trapped signal's name, or nil.
-- @treturn string|nil
M.signaled = core.signaled

--- The name of an errno, as fail tuples give it ("EMFILE", "ENOTSUPP").
-- @tparam integer errno
-- @treturn string
M.errname = core.errname

--- The versions behind this module: `tcpinspect` (this library), `libbpf`
-- (the libbpf it runs with, "1.1") and `kernel` (the running kernel's release).
-- @treturn table
function M.versions()
	local v = core.versions()
	v.tcpinspect = M._VERSION:match("%S+$")
	return v
end

--- Debug output: with `true`, all of libbpf's log (its debug lines
-- too) goes to stderr as sessions load and attach, as the CLI's `-v`;
-- `false` turns it off.  Off by default (a failure's message still ends
-- with libbpf's last line).
-- @tparam boolean on
M.set_debug = core.set_debug

--- The names of the packet fields, in the order of the reference docs.
-- @treturn {string,...}
M.packet_fields = core.packet_fields

local methods = core.session_methods
local stopping = setmetatable({}, { __mode = "k" })

local core_stop = methods.stop

--- Ask a running `session:run` to return after the current poll.  From
-- inside a callback, delivery also ends after that callback: the records
-- after it stay in the ring for the next poll.
function methods.stop(self)
	stopping[self] = true
	core_stop(self)
end

--- Poll in a loop until `duration` seconds pass or `stop()` is called.
-- @tparam[opt] table opts
--   duration: seconds to run (default: until stopped);
--   interval: seconds between on_interval calls (default 1);
--   on_interval: function(session, elapsed) called every interval;
--   poll_ms: the longest single wait, bounding event latency (default 100);
--   should_stop: function(n) -> true to end the loop (called after every
--     poll with n, the events that poll delivered)
-- On a replay (`tcpinspect.replay`) time is the capture's: `duration` and
-- `interval` are seconds of the capture (`session:now()`), so an hour of
-- capture runs in as long as its packets take; without a duration the run
-- ends with the file ("end").  When nothing is due before the next frame
-- (or the end of the duration) the clock crosses the gap in one poll, and
-- the ticks in it fire once, at the last of them, elapsed covering it.
-- @treturn number events delivered
-- @treturn string why it ended: "duration", "stopped", "signal" (see
--   `trap_signals`), "end" (a replay's file)
function methods.run(self, opts)
	opts = opts or {}
	if type(opts) ~= "table" then
		error("tcpinspect: run: expected an options table, got " .. type(opts), 2)
	end
	for k in pairs(opts) do
		if k ~= "duration" and k ~= "interval" and k ~= "on_interval"
			and k ~= "poll_ms" and k ~= "should_stop" then
			error("tcpinspect: unknown run option '" .. tostring(k) ..
				"' (known: duration, interval, on_interval, poll_ms, should_stop)", 2)
		end
	end
	local duration, interval = opts.duration, opts.interval or 1
	-- NaN compares false with everything (x ~= x): refused too
	if duration ~= nil and (type(duration) ~= "number" or duration ~= duration or duration < 0) then
		error("tcpinspect: run option 'duration': expected seconds >= 0, got " .. tostring(duration), 2)
	end
	if type(interval) ~= "number" or interval ~= interval or interval <= 0 then
		error("tcpinspect: run option 'interval': expected seconds > 0, got " .. tostring(interval), 2)
	end
	local poll_ms = opts.poll_ms or 100
	if math.type(poll_ms) ~= "integer" or poll_ms < 0 then
		error("tcpinspect: run option 'poll_ms': expected an integer >= 0, got " .. tostring(poll_ms), 2)
	end
	local on_interval, should_stop = opts.on_interval, opts.should_stop
	-- a replay's clock moves only as far as poll asks: round its waits up
	local replay = self.mode == "replay"
	local round = replay and math.ceil or math.floor
	local start = self:now()
	local next_tick = start + interval
	local stop_at = duration and start + duration or math.huge
	local total = 0
	stopping[self] = nil
	while true do
		local now = self:now()
		if replay then
			-- Nothing is due before the next frame (or the end of the
			-- duration): the ticks in between fire once, at the last of
			-- them, so that the loop's cost follows the frames, not the span.
			local horizon = math.min(self.next_ts, stop_at)
			if horizon < math.huge and horizon - next_tick > interval then
				local m = math.ceil((horizon - next_tick) / interval) - 1
				while m > 0 and next_tick + m * interval >= horizon do m = m - 1 end
				next_tick = next_tick + m * interval
			end
		end
		local wait = math.min(next_tick, stop_at) - now
		wait = math.max(0, math.min(wait * 1000, poll_ms > 0 and poll_ms or replay and 2^53 or 0))
		if replay and poll_ms > 0 and wait == poll_ms then
			-- no frame in the next steps: skip the whole steps before the
			-- next frame (the tick, the end) in one poll, on the same grid
			local gap = (math.min(self.next_ts, next_tick, stop_at) - now) * 1000
			if gap > 2 * poll_ms then wait = math.floor(gap / poll_ms) * poll_ms end
		end
		local n, err, errno = self:poll(round(wait))
		if not n then return nil, err, errno end
		total = total + n
		local before = now
		now = self:now()
		if on_interval and now >= next_tick then
			on_interval(self, now - start)
		end
		if now >= next_tick then
			next_tick = next_tick + interval * (math.floor((now - next_tick) / interval) + 1)
		end
		if core.signal_count() ~= signals_reported then
			signals_reported = core.signal_count()
			return total, "signal"
		end
		if stopping[self] or (should_stop and should_stop(n)) then
			stopping[self] = nil
			return total, "stopped"
		end
		if duration and (now - start >= duration
				-- a replay's clock that can go no further (2^64 ns)
				or replay and self.ended and wait > 0 and now <= before) then
			-- drain what is pending, then stop
			total = total + (self:poll(0) or 0)
			return total, "duration"
		end
		if replay and not duration and self.ended then
			return total, "end"
		end
	end
end

--- The file descriptor to wait on for readability.
-- @treturn integer fd, or -1 when events are off
function methods.pollfd(self)
	return self:fd()
end

--- The longest wait before calling poll(0) anyway, in seconds.  Records
-- committed without a wakeup (batched) are picked up then.
-- @treturn number
function methods.timeout()
	return 0.1
end

local Pollable = {}
Pollable.__index = Pollable
function Pollable:pollfd() return self.session:fd() end
function Pollable.events() return "r" end
function Pollable:timeout() return self.session:timeout() end

--- An object for the cqueues protocol (`:pollfd()`, `:events()`,
-- `:timeout()`), since `session.events` is the boolean field:
-- `cqueues.poll(s:pollable(), ...)`, then `s:poll(0)`.
-- @treturn table with `session`, and the three methods
function methods.pollable(self)
	return setmetatable({ session = self }, Pollable)
end

return M
