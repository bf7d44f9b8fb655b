-- SPDX-License-Identifier: GPL-2.0-only
-- The shape of luaext/ (doc/HACKING.md, "Who owns what"): the kernel layer
-- (kernel*.c) and the plain-C helpers beside it (parse.c, expr.c,
-- pcapfile.c) have no Lua in them, the kernel layer is the only code that
-- holds the BPF skeleton, and no file calls into a file that calls it (the
-- call graph between files, by the ti_* functions and tables each defines,
-- has no cycle).
-- plain C beside the kernel layer, no Lua: the fuzz targets link
-- parse.c and expr.c alone (spec/fuzz/run, spec/49), the kernel layer
-- links pcapfile.c
local NO_LUA = { ["luaext/parse.c"] = true, ["luaext/expr.c"] = true, ["luaext/pcapfile.c"] = true }

local function read(path)
	local f = assert(io.open(path))
	local s = f:read("a")
	f:close()
	return s
end

local function c_files()
	local p = assert(io.popen("ls luaext/*.c"))
	local t = {}
	for line in p:lines() do t[#t + 1] = line end
	p:close()
	return t
end

-- strip comments and string literals, so names in prose do not count
local function code_of(src)
	return (src:gsub("/%*.-%*/", ""):gsub("//[^\n]*", ""):gsub('"[^"\n]*"', '""'))
end

local function graph()
	local defs, files = {}, {}
	for _, f in ipairs(c_files()) do
		local code = code_of(read(f))
		files[f] = code
		-- a definition starts a line: "type name(args)\n{" or "const char *const name[..] ="
		for name in code:gmatch("\n[%w_ %*]-[%s%*](ti_[%w_]+)%([^;{]-%)%s*{") do defs[name] = f end
		for name in code:gmatch("\nconst char %*const (ti_[%w_]+)%[") do defs[name] = f end
	end
	local edges = {}
	for f, code in pairs(files) do
		edges[f] = {}
		for name, df in pairs(defs) do
			if df ~= f and code:find("%f[%w_]" .. name .. "%f[^%w_]") then edges[f][df] = name end
		end
	end
	return edges, defs
end

describe("luaext/ structure", function()
	it("finds the definitions it checks (the scanner works)", function()
		local _, defs = graph()
		assert.are.equal("luaext/kernel.c", defs.ti_kernel_open)
		assert.are.equal("luaext/kernel_tc.c", defs.ti_tc_attach)
		assert.are.equal("luaext/session.c", defs.ti_session_open)
		assert.are.equal("luaext/kernel_env.c", defs.ti_mode_names)
		assert.are.equal("luaext/parse.c", defs.ti_parse_ports)
		assert.are.equal("luaext/parse.c", defs.ti_parse_cidr)
	end)

	it("has no call cycle between files", function()
		local edges = graph()
		local state, path = {}, {}
		local function visit(f)
			if state[f] == "done" then return end
			assert(state[f] ~= "open", "cycle: " .. table.concat(path, " -> ") .. " -> " .. f)
			state[f] = "open"
			path[#path + 1] = f
			for g in pairs(edges[f] or {}) do visit(g) end
			path[#path] = nil
			state[f] = "done"
		end
		for f in pairs(edges) do visit(f) end
	end)

	it("keeps Lua out of the kernel layer, and the skeleton in it", function()
		for _, f in ipairs(c_files()) do
			local src = read(f)
			local kernel = f:match("^luaext/kernel") ~= nil
			if kernel or NO_LUA[f] then
				assert.is_nil(src:find("#include <lua"), f .. " includes Lua")
				assert.is_nil(src:find('#include "ti.h"', 1, true), f .. " includes ti.h (Lua side)")
				assert.is_nil(src:find("lua_State"), f .. " uses lua_State")
			else
				assert.is_nil(src:find("skel.h", 1, true), f .. " includes the BPF skeleton")
			end
		end
		for _, h in ipairs{ "luaext/kernel.h", "luaext/kernel_int.h" } do
			assert.is_nil(read(h):find("lua"), h .. " mentions lua")
		end
		for _, h in ipairs{ "luaext/parse.h", "luaext/expr.h", "luaext/pcapfile.h" } do
			local src = read(h)
			assert.is_nil(src:find("#include <lua"), h .. " includes Lua")
			assert.is_nil(src:find('#include "ti.h"', 1, true), h .. " includes ti.h (Lua side)")
			assert.is_nil(src:find("lua_State"), h .. " uses lua_State")
		end
	end)

	-- Live and replay are two backends behind one interface (luaext/kernel.h,
	-- struct ti_kernel_ops in kernel_int.h): the struct is defined inside the
	-- kernel layer only, the Lua bindings name nothing that belongs to one
	-- backend, and outside kernel_replay.c no kernel file tests for a replay.
	local BINDINGS = { "session.c", "map.c", "packet.c", "core.c", "options.c", "errors.c", "signals.c", "recorder.c" }
	local BACKEND_ONLY = {
		{ "[%.>]replay%f[^%w_]", "a replay's state (k->replay)" },
		{ "ti_kernel_replay_", "a replay-only function" },
		{ "ti_replay_", "kernel_replay.c's internals" },
		{ "ti_kernel_tc_", "a tc-only function" },
		{ "[%.>]tc%[", "tc's attachments (k->tc[])" },
		{ "[%.>]n?tc_[%w_]+", "tc's state (k->tc_*, k->ntc_*)" },
		{ "probe_status", "the function probes' status" },
		{ "cgroup_path", "cgroup mode's attach point" },
		{ "ring_buffer", "the live ring's reader" },
		{ "epoll", "the live waiter" },
		{ "epfd", "the live waiter's fd" },
		{ "[%.>]skel%f[^%w_]", "the BPF skeleton" },
		{ "[%.>]links?%f[^%w_]", "the live links" },
		{ "kernel_int%.h", "the kernel layer's private header" },
		{ "ti_kernel_init", "the live backend's constructor step" },
	}
	it("keeps the backends behind the kernel interface", function()
		for _, b in ipairs(BINDINGS) do
			local f = "luaext/" .. b
			local code = code_of(read(f))
			for _, p in ipairs(BACKEND_ONLY) do
				local at = code:find(p[1])
				assert(not at, ("%s names %s: '%s'"):format(f, p[2], at and code:sub(math.max(1, at - 12), at + 20) or ""))
			end
		end
		local p = assert(io.popen("ls luaext/*.c luaext/*.h"))
		for f in p:lines() do
			local code = code_of(read(f))
			if code:find("struct ti_kernel%s*{") then
				assert.are.equal("luaext/kernel_int.h", f, f .. " defines struct ti_kernel")
			end
			if f:match("^luaext/kernel") and f ~= "luaext/kernel_replay.c" then
				assert.is_nil(code:find("[%.>]replay%f[^%w_]"), f .. " tests for a replay (k->replay)")
			end
		end
		p:close()
		assert.truthy(code_of(read("luaext/kernel.h")):find("struct ti_kernel;", 1, true), "kernel.h declares struct ti_kernel")
	end)
end)
