-- SPDX-License-Identifier: GPL-2.0-only
-- Unit specs: packaging.  The build needs no kernel BTF (it uses the
-- checked-in bpf/vmlinux/<arch>/vmlinux.h), and every module that lua/
-- requires is the project's own, Lua's standard library, or comes from a rock
-- the rockspec depends on, whose Debian package `make deps` installs.
-- No root, no kernel.

local ROCKSPEC = "tcpinspect-0.2.0-1.rockspec"

-- Lua 5.4's standard library, as require sees it (package.loaded).
local STDLIB = {
	_G = true, coroutine = true, debug = true, io = true, math = true, os = true,
	package = true, string = true, table = true, utf8 = true,
}

-- Third-party modules lua/ may require, by top-level name: the LuaRocks rock
-- that provides it and the Debian package with the same module.  A require of
-- a module missing here fails the spec: add it, with its rock in the rockspec
-- and its package in the Makefile's DEB_PACKAGES.
local PROVIDERS = {
	argparse = { rock = "argparse", deb = "lua-argparse" },
	dkjson = { rock = "dkjson", deb = "lua-dkjson" },
	socket = { rock = "luasocket", deb = "lua-socket" },
	luv = { rock = "luv", deb = "lua-luv" },
	cqueues = { rock = "cqueues", deb = "lua-cqueues" },
	posix = { rock = "luaposix", deb = "lua-posix" },
	term = { rock = "lua-term", deb = "lua-term" },
}

local function read(path)
	local f = assert(io.open(path))
	local s = f:read("a")
	f:close()
	return s
end

local function sh(cmd)
	local p = assert(io.popen(cmd .. " 2>&1"))
	local out = p:read("a")
	local ok, _, code = p:close()
	return ok and 0 or code, out
end

local function own(m) return m == "tcpinspect" or m:match("^tcpinspect%.") ~= nil end
local function top(m) return (m:match("^[^.]+")) end

-- Every `require` in a Lua source: { module, optional } for `require "m"`,
-- `require 'm'`, `require("m")` and `pcall(require, "m")` (optional: the code
-- copes without it); anything else (`require(name)`) comes back as
-- { nil, text } so the spec can refuse it.  Comments are scanned too: a
-- commented-out require of an undeclared module fails, which is harmless.
local function requires(src)
	local found = {}
	local pos = 1
	while true do
		local s, e = src:find("%f[%w_]require%f[^%w_]", pos)
		if not s then break end
		local before = src:sub(math.max(1, s - 40), s - 1)
		local after = src:sub(e + 1)
		local m = after:match("^%s*%(?%s*[\"']([^\"']+)[\"']")
		if m then
			found[#found + 1] = { module = m, optional = false }
		else
			m = after:match("^%s*,%s*[\"']([^\"']+)[\"']")
			if m and before:match("pcall%s*%(%s*$") then
				found[#found + 1] = { module = m, optional = true }
			else
				found[#found + 1] = { text = src:match("^[^\n]*", s) }
			end
		end
		pos = e + 1
	end
	return found
end

local function lua_files()
	local _, out = sh("find lua -name '*.lua' | sort")
	local files = {}
	for line in out:gmatch("[^\n]+") do files[#files + 1] = line end
	return files
end

-- The rockspec is Lua assignments: run it in an empty environment.
local function rockspec()
	local env = {}
	assert(load(read(ROCKSPEC), "@" .. ROCKSPEC, "t", env))()
	return env
end

-- rock name -> its version constraint ("" for none), from the dependencies list
local function rockspec_deps()
	local deps = {}
	for _, d in ipairs(rockspec().dependencies) do
		local name, rest = d:match("^%s*([%w_.-]+)%s*(.-)%s*$")
		deps[name] = rest
	end
	return deps
end

-- The Makefile's DEB_PACKAGES, continuation lines joined.
local function deb_packages()
	local mk = read("Makefile"):gsub("\\\n", " ")
	local list = assert(mk:match("\nDEB_PACKAGES%s*:=%s*([^\n]*)"), "no DEB_PACKAGES in the Makefile")
	local set = {}
	for p in list:gmatch("%S+") do set[p] = true end
	return set
end

describe("packaging", function()
	describe("the require scanner", function()
		it("finds every spelling of a require, and flags what it cannot read", function()
			local got = requires([[
local a = require "a.b"
local b = require('b')
local c = require"c"
local ok, d = pcall(require, "d.core")
local e = require(name)
-- the requirements
]])
			assert.are.same({
				{ module = "a.b", optional = false },
				{ module = "b", optional = false },
				{ module = "c", optional = false },
				{ module = "d.core", optional = true },
				{ text = "require(name)" },
			}, got)
		end)

		it("sees the CLI parser's argparse and the JSON module's dkjson in lua/", function()
			local hard = {} -- module -> { file = true, ... }
			for _, f in ipairs(lua_files()) do
				for _, r in ipairs(requires(read(f))) do
					if r.module and not r.optional then
						hard[r.module] = hard[r.module] or {}
						hard[r.module][f] = true
					end
				end
			end
			assert.is_true(hard.argparse["lua/tcpinspect/args.lua"])
			assert.is_true(hard.dkjson["lua/tcpinspect/json.lua"])
			assert.is_true(hard["tcpinspect.core"]["lua/tcpinspect.lua"])
		end)
	end)

	describe(ROCKSPEC, function()
		local deps = rockspec_deps()

		it("needs Lua 5.4", function()
			assert.are.equal(">= 5.4", deps.lua)
		end)

		it("depends on the rock of every module lua/ requires", function()
			local bad = {}
			for _, f in ipairs(lua_files()) do
				for _, r in ipairs(requires(read(f))) do
					local m = r.module
					if not m then
						bad[#bad + 1] = f .. ": cannot tell which module: " .. r.text
					elseif not (own(m) or STDLIB[m]) then
						local p = PROVIDERS[top(m)]
						if not p then
							bad[#bad + 1] = f .. ": require '" .. m .. "': unknown module, add it to PROVIDERS in this spec"
						elseif not r.optional and not deps[p.rock] then
							bad[#bad + 1] = f .. ": require '" .. m .. "': the rockspec does not depend on '" .. p.rock .. "'"
						end
					end
				end
			end
			assert.are.same({}, bad)
		end)

		it("depends on nothing that lua/ does not require", function()
			local used = { lua = true }
			for _, f in ipairs(lua_files()) do
				for _, r in ipairs(requires(read(f))) do
					if r.module and not r.optional and PROVIDERS[top(r.module)] then
						used[PROVIDERS[top(r.module)].rock] = true
					end
				end
			end
			for rock in pairs(deps) do
				assert(used[rock], "the rockspec depends on '" .. rock .. "', which no require in lua/ needs")
			end
		end)

		it("has each dependency's Debian package in make deps, and that package provides the module here", function()
			local debs = deb_packages()
			local n = 0
			for mod, p in pairs(PROVIDERS) do
				if deps[p.rock] then
					n = n + 1
					assert(debs[p.deb], "rock '" .. p.rock .. "': Debian package " .. p.deb ..
						" is not in the Makefile's DEB_PACKAGES")
					local ok, err = pcall(require, mod)
					assert(ok, "module '" .. mod .. "' (" .. p.deb .. ") does not load: " .. tostring(err))
				end
			end
			local rocks = 0
			for rock in pairs(deps) do if rock ~= "lua" then rocks = rocks + 1 end end
			assert.are.equal(rocks, n, "a rockspec dependency has no entry in PROVIDERS")
			assert(rocks >= 2, "argparse and dkjson at least")
		end)

		it("is installed from Debian by CI: .ci/run runs make deps first, then every suite, and sums them", function()
			-- .ci/run itself, in a scratch tree, with apt-get, make and
			-- spec/fuzz/run replaced by stubs that log their calls and print
			-- a suite's result: what it runs, in which order, and its sum
			local _, out = sh("mktemp -d")
			local tmp = assert(out:match("^(/%S+)"))
			local function put(path, text)
				local f = assert(io.open(tmp .. "/" .. path, "w"))
				f:write(text)
				f:close()
				assert.are.equal(0, (sh("chmod +x '" .. tmp .. "/" .. path .. "'")))
			end
			assert.are.equal(0, (sh("mkdir -p '" .. tmp .. "/.ci' '" .. tmp .. "/bin' '" .. tmp .. "/spec/fuzz' && cp .ci/run '"
				.. tmp .. "/.ci/run'")))
			local log = tmp .. "/calls.log"
			put("bin/apt-get", '#!/bin/sh\necho "apt-get $*" >> ' .. log .. '\n')
			put("bin/make", '#!/bin/sh\necho "make $* FUZZ_SECS=${FUZZ_SECS:-}" >> ' .. log .. '\ncase "$1" in\n' ..
				'deps) exit 0 ;;\n' ..
				'test) mkdir -p build/test-results; echo "unit 3 0" > build/test-results/summary.txt; ' ..
				'echo "  5 passed, 0 failed"; exit 0 ;;\n' ..
				'soak) echo "soak: no summary line"; exit 1 ;;\nesac\nexit 9\n')
			put("spec/fuzz/run", '#!/bin/sh\necho "fuzz-run $* FUZZ_SECS=${FUZZ_SECS:-}" >> ' .. log .. '\ncase "$1" in\n' ..
				'asan) echo "2 passed, 0 failed"; exit 0 ;;\nallocfail) exit 0 ;;\n' ..
				'fuzz) echo "1 passed, 1 failed"; exit 1 ;;\nesac\nexit 9\n')
			local rc, ci = sh("cd / && env -u FUZZ_SECS PATH='" .. tmp .. "/bin':\"$PATH\" '" .. tmp .. "/.ci/run'")
			local calls = read(log)
			sh("rm -rf '" .. tmp .. "'")
			assert.are.equal("apt-get update\nmake deps FUZZ_SECS=\nmake test FUZZ_SECS=\nmake soak FUZZ_SECS=\n" ..
				"fuzz-run asan FUZZ_SECS=\nfuzz-run allocfail FUZZ_SECS=\nfuzz-run fuzz FUZZ_SECS=10\n", calls)
			-- test 5/0, soak 0/1 (failed, no line), asan 2/0, allocfail 1/0 (passed, no line), fuzz 1/1
			assert.matches("\n9 passed, 2 failed\n$", ci)
			assert.matches("\n  unit 3 0\n", ci, 1, true)
			assert.are_not.equal(0, rc)
		end)
	end)

	describe("the build", function()
		local arch = (select(2, sh("uname -m")):gsub("\n", ""):gsub("^x86_64$", "x86"):gsub("^aarch64$", "arm64"))
		local tmp

		before_each(function()
			local _, out = sh("mktemp -d")
			tmp = assert(out:match("^(/%S+)"))
		end)
		after_each(function()
			if tmp then sh("rm -rf '" .. tmp .. "'") end
		end)

		it("has a generated vmlinux.h for this architecture, naming its kernel and command", function()
			local h = read("bpf/vmlinux/" .. arch .. "/vmlinux.h")
			local head = h:sub(1, 1000)
			assert.is_truthy(head:match("^/%* Generated, do not edit"))
			assert.is_truthy(head:match("\n %* Kernel: +[^\n]*Linux version %d+%.%d+"))
			assert.is_truthy(head:match("\n %* Command: bpftool btf dump file %S+ format c"))
			assert.is_truthy(head:match("\n %*/\n#ifndef __VMLINUX_H__\n"))
			assert.is_truthy(h:find("\nstruct tcphdr {\n", 1, true))
		end)

		it("builds from a clean copy with no kernel BTF (VMLINUX_BTF=/nonexistent), and the module loads", function()
			assert.are.equal(0, (sh("cp -r Makefile bpf luaext lua '" .. tmp .. "/'")))
			local rc, out = sh("make -C '" .. tmp .. "' VMLINUX_BTF=/nonexistent")
			assert(rc == 0, out)
			assert.is_truthy(out:find("-Ibpf/vmlinux/" .. arch .. " ", 1, true))
			assert.is_falsy(out:find("/nonexistent", 1, true))
			local so = io.open(tmp .. "/build/tcpinspect/core.so")
			assert.is_truthy(so)
			so:close()
			rc, out = sh("cd '" .. tmp .. "' && lua5.4 -e 'package.cpath = \"build/?.so\"' " ..
				"-e 'local c = require \"tcpinspect.core\"; print(type(c.open))'")
			assert.are.equal(0, rc, out)
			assert.are.equal("function\n", out)
		end)

		it("stops, naming the architecture, when there is no vmlinux.h for it", function()
			assert.are.equal(0, (sh("cp -r Makefile bpf luaext lua '" .. tmp .. "/'")))
			local rc, out = sh("make -C '" .. tmp .. "' ARCH=sparc64 VMLINUX_BTF=/nonexistent")
			assert.are_not.equal(0, rc)
			assert.is_truthy(out:find("no vmlinux.h for architecture 'sparc64'", 1, true), out)
			assert.is_falsy(io.open(tmp .. "/build/tcpinspect/core.so"))
		end)
	end)
end)
