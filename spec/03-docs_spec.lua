-- The reference docs and the code stay in step: every exported name is
-- documented in doc/reference.md, and every documented name exists.
local core = require "tcpinspect.core"
local tcpinspect = require "tcpinspect"

local function read(path)
  local f = assert(io.open(path))
  local s = f:read("a")
  f:close()
  return s
end

local ref = read("doc/reference.md")

-- names in table rows: | `name` | ...
local function table_names()
  local t = {}
  for name in ref:gmatch("\n| `([%w_]+)` |") do t[name] = true end
  return t
end

local function headings()
  local t = {}
  for name in ref:gmatch("\n### ([%w_%.:]+)") do t[name] = true end
  return t
end

describe("doc/reference.md", function()
  local rows, heads = table_names(), headings()

  it("documents every module function and constant", function()
    for k in pairs(tcpinspect) do
      assert(heads["tcpinspect." .. k] or rows[k], "undocumented: tcpinspect." .. k)
    end
  end)
  it("documents every session method", function()
    for k in pairs(core.session_methods) do
      assert(heads["session:" .. k], "undocumented: session:" .. k)
    end
  end)
  it("documents every option, filter key, counter, map, session and packet field", function()
    for _, list in ipairs{ core.option_names, core.filter_keys, core.stat_names,
                           core.map_names, core.session_fields, core.packet_fields() } do
      for _, k in ipairs(list) do assert(rows[k], "undocumented: " .. k) end
    end
  end)
  it("documents nothing that does not exist", function()
    for h in pairs(heads) do
      local obj, name = h:match("^(%w+)[:%.]([%w_]+)$")
      if obj == "tcpinspect" then
        assert(tcpinspect[name] ~= nil, "documented but missing: " .. h)
      elseif obj == "session" then
        assert(core.session_methods[name], "documented but missing: " .. h)
      elseif obj == "packet" then
        assert(name == "copy" or name == "totable", "documented but missing: " .. h)
      elseif obj == "map" then
        local known = { pairs = 1, lookup = 1, delete = 1, clear = 1, count = 1 }
        assert(known[name], "documented but missing: " .. h)
      end
    end
  end)
  it("lists every known name in a row or heading that the code has", function()
    local known = {}
    for _, list in ipairs{ core.option_names, core.filter_keys, core.stat_names,
                           core.map_names, core.session_fields, core.packet_fields() } do
      for _, k in ipairs(list) do known[k] = true end
    end
    for k in pairs(tcpinspect) do known[k] = true end
    -- map key/value columns are documented in the Maps table, not rows
    for name in pairs(rows) do
      assert(known[name], "documented row with no code behind it: " .. name)
    end
  end)
end)
