-- SPDX-License-Identifier: GPL-2.0-only
--- spec/support/unpriv.lua: what an unprivileged user needs to run the
-- specs' commands, in a place it can read.
--
--     local unpriv = require "support.unpriv"
--     local dir = unpriv.copy()       -- once; a world-readable copy in /tmp
--     sh("cd " .. dir .. " && " .. unpriv.SETPRIV .. "busted --lua=lua5.4 spec/34-replay_spec.lua")
--     sh(unpriv.SETPRIV .. dir .. "/build/bin/tcpinspect -r ...")
--     unpriv.remove(dir)
--
-- Specs that run as nobody (setpriv) must never depend on the checkout's own
-- permissions: a clone in root's home (mode 0700) is readable by root only.
-- `copy` puts into a new directory under /tmp, readable by every user, what
-- those runs read: lua/, examples/, spec/ (the specs, their support files
-- and fixtures), .busted, and the build's module and command
-- (build/tcpinspect/core.so; build/bin/tcpinspect, the checkout's launcher
-- with its paths pointing into the copy).  Plain Lua and the shell: usable
-- by unit specs (no support.net).
local M = {}

--- nobody, no groups, no capabilities
M.SETPRIV = "setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all --bounding-set=-all "

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function run(cmd)
	local p = assert(io.popen(cmd .. " 2>&1"))
	local out = p:read("a")
	local ok = p:close()
	if not ok then error("support.unpriv: " .. cmd .. ": " .. out, 2) end
	return out
end

--- The checkout's root (this file is ROOT/spec/support/unpriv.lua).
function M.root()
	local src = debug.getinfo(1, "S").source:gsub("^@", "")
	local d = src:match("^(.*)/[^/]*$") or "."
	return (run("cd " .. q(d) .. "/../.. && pwd -P"):gsub("\n$", ""))
end

--- Copy what unprivileged runs need into a new world-readable directory.
-- @tparam[opt] string root the checkout (default: this file's)
-- @tparam[opt] string build the build whose core.so to copy (default
--   TCPINSPECT_BUILD, else ROOT/build)
-- @treturn string the directory (absolute); remove it with `remove`
function M.copy(root, build)
	root = root or M.root()
	build = build or os.getenv("TCPINSPECT_BUILD") or (root .. "/build")
	local dir = run("mktemp -d /tmp/tcpinspect-unpriv-XXXXXXXX"):match("^(%S+)")
	run(("cd %s && cp -r lua examples spec .busted %s/ && mkdir -p %s/build/tcpinspect %s/build/bin && " ..
		"cp %s/tcpinspect/core.so %s/build/tcpinspect/core.so"):format(q(root), q(dir), q(dir), q(dir), q(build), q(dir)))
	-- the checkout's launcher (made by the Makefile), naming the copy
	local f = assert(io.open(root .. "/build/bin/tcpinspect"))
	local launcher = f:read("a")
	f:close()
	local count
	launcher, count = launcher:gsub(root:gsub("%p", "%%%0") .. "/", (dir:gsub("%%", "%%%%")) .. "/")
	assert(count >= 3, "support.unpriv: " .. root .. "/build/bin/tcpinspect does not name the checkout")
	f = assert(io.open(dir .. "/build/bin/tcpinspect", "w"))
	f:write(launcher)
	f:close()
	run(("chmod -R a+rX %s && chmod 755 %s %s/build/bin/tcpinspect"):format(q(dir), q(dir), q(dir)))
	return dir
end

--- Remove a directory made by `copy`.
function M.remove(dir)
	if dir and dir:match("^/tmp/tcpinspect%-unpriv%-") then run("rm -rf " .. q(dir)) end
end

return M
