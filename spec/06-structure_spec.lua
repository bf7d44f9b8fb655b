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
end)
