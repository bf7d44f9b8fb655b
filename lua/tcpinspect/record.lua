-- SPDX-License-Identifier: GPL-2.0-only
--- tcpinspect.record: a session's flight recorder written to timestamped
-- files in a directory, the newest N kept, as tcpdump's ring of files
-- (-w with -G/-W) keeps them.  `tcpinspect record` and the alerting
-- examples' --dump use it; any script may.
--
--   local record = require "tcpinspect.record"
--   local r = assert(record.new(session, { dir = "/var/tmp/tcpi", seconds = 30, max_files = 10 }))
--   local path, segments, drops = r:dump()        -- nil, message, errno on failure
--
-- A file is DIR/PREFIX-YYYYmmddTHHMMSSZ-NNNN.pcap: the UTC time of the
-- dump (a replay's: the capture's time) and a sequence number, so that the
-- names sort in the order they were written.  Only the files this object
-- wrote count towards max_files (and only those are removed).
-- @module tcpinspect.record
local M = {}

local Files = {}
Files.__index = Files

local function is_dir(path)
	local f = io.open(path .. "/.", "r")
	if f then f:close() end
	return f ~= nil
end

--- A recorder on session s with its files in opts.dir.
-- @tparam table opts dir (required), seconds, bytes, snaplen (session:recorder's), max_files, prefix
-- @treturn[1] table the object (:dump, :stats, :close, .recorder)
-- @treturn[2] nil, message, errno (the recorder's, or the directory's)
function M.new(s, opts)
	if type(opts) ~= "table" or type(opts.dir) ~= "string" or opts.dir == "" then
		error("tcpinspect: record.new: expected an options table with dir = DIRECTORY", 2)
	end
	local max = opts.max_files
	if max ~= nil and (math.type(max) ~= "integer" or max < 1) then
		error("tcpinspect: record.new: option 'max_files': expected an integer >= 1, got " .. tostring(max), 2)
	end
	if not is_dir(opts.dir) then
		return nil, ("ENOTDIR: %s is not a directory (give an existing directory)"):format(opts.dir), 20
	end
	local rec, err, errno = s:recorder{ seconds = opts.seconds, bytes = opts.bytes, snaplen = opts.snaplen }
	if not rec then return nil, err, errno end
	return setmetatable({ recorder = rec, session = s, dir = opts.dir, max_files = max, files = {}, seq = 0,
		prefix = opts.prefix or "tcpinspect" }, Files)
end

--- Write the window to a new file (opts: rec:dump's seconds and filter).
-- @treturn[1] string the file's path
-- @treturn[1] integer segments written
-- @treturn[1] integer drops written
-- @treturn[2] nil, message, errno
function Files:dump(opts)
	local s = self.session
	local when = s.mode == "replay" and math.floor(s:now()) or os.time()
	self.seq = self.seq + 1
	local path = ("%s/%s-%s-%04d.pcap"):format(self.dir, self.prefix, os.date("!%Y%m%dT%H%M%SZ", when), self.seq)
	local segs, drops, errno = self.recorder:dump(path, opts)
	-- a file cut short by a write error is kept (it reads cleanly) and
	-- takes its place in the ring
	local f = io.open(path, "rb")
	if f then
		f:close()
		self.files[#self.files + 1] = path
		while self.max_files and #self.files > self.max_files do os.remove(table.remove(self.files, 1)) end
	end
	if not segs then return nil, drops, errno end
	return path, segs, drops
end

--- The recorder's counters (rec:stats()).
function Files:stats()
	return self.recorder:stats()
end

--- Close the recorder (its window is freed; the files stay).
function Files:close()
	return self.recorder:close()
end

--- The alerting examples' --dump DIR: a function that writes the window
-- to a new file in o.dump (the last o.dump_seconds, the newest
-- o.dump_files kept, names PREFIX-...) and prints
-- `DUMP PREFIX file=PATH segments=N drops=N` (or `DUMP PREFIX failed: why`);
-- a function that does nothing when o.dump is "" (no --dump).
-- @tparam table s the session
-- @tparam table o the script's options: dump, dump_seconds, dump_files
-- @tparam string prefix the files' and the lines' name
-- @treturn function dump_window()
function M.alert_dumper(s, o, prefix)
	if o.dump == "" then return function() end end
	local rec, err = M.new(s, { dir = o.dump, seconds = o.dump_seconds, max_files = o.dump_files, prefix = prefix })
	if not rec then error("tcpinspect: --dump: " .. tostring(err), 0) end
	return function()
		local path, segs, drops = rec:dump()
		if path then
			io.write(("DUMP %s file=%s segments=%d drops=%d\n"):format(prefix, path, segs, drops))
		else
			io.write(("DUMP %s failed: %s\n"):format(prefix, segs))
		end
	end
end

return M
