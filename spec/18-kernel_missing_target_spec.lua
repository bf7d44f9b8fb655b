-- A missing probe target (RELIABILITY 14): when tcp_v6_rcv is absent, the
-- tcp_v4_rcv probe still attaches and counts, and session.probes reports the
-- gap.  Kernels here all have both functions, so the spec hides tcp_v6_rcv
-- with the TCPINSPECT_HIDE_FUNCS test hook, which makes open() take the
-- same path as a kernel without it.
local tcpinspect = require "tcpinspect"
local socket = require "socket"
local stdlib = require "posix.stdlib"

local modes = {}
for m in (os.getenv("TCPINSPECT_EXPECT_MODES") or ""):gmatch("[^,]+") do
  if m == "fentry" or m == "kprobe" then modes[#modes + 1] = m end
end

-- one connection with a 5-byte payload to host:port; returns when closed
local function connect_once(host, port)
  local srv = assert(socket.bind(host, port))
  local c = assert(socket.connect(host, port))
  local a = assert(srv:accept())
  assert(c:send("hello"))
  assert.equals("hello", a:receive(5))
  c:close(); a:close(); srv:close()
end

describe("missing probe target #kernel", function()
  for _, mode in ipairs(modes) do
    it(mode .. ": without tcp_v6_rcv, v4 is probed and the gap reported", function()
      stdlib.setenv("TCPINSPECT_HIDE_FUNCS", "tcp_v6_rcv")
      local s, err = tcpinspect.open{ mode = mode, filter = { port = 47011 } }
      stdlib.setenv("TCPINSPECT_HIDE_FUNCS", nil)
      assert(s, err)
      finally(function() s:close() end)
      assert.equals(mode, s.mode)
      assert.equals("attached", s.probes.tcp_v4_rcv)
      assert.matches("^missing: tcp_v6_rcv is not in this kernel", s.probes.tcp_v6_rcv)
      connect_once("127.0.0.1", 47011)
      connect_once("::1", 47011)
      s:poll(100)
      local v4, v6 = 0, 0
      for k, v in s:map("sources"):pairs() do
        if k.family == 4 then v4 = v4 + v.syns else v6 = v6 + v.syns end
      end
      assert.equals(1, v4)
      assert.equals(0, v6)
    end)
    it(mode .. ": family='ipv6' with tcp_v6_rcv missing fails with the reason", function()
      stdlib.setenv("TCPINSPECT_HIDE_FUNCS", "tcp_v6_rcv")
      local s, err, errno = tcpinspect.open{ mode = mode, family = "ipv6" }
      stdlib.setenv("TCPINSPECT_HIDE_FUNCS", nil)
      if s then s:close() end
      assert.is_nil(s)
      assert.equals(2, errno)
      assert.matches("no probe target: missing: tcp_v6_rcv is not in this kernel", err)
    end)
  end
end)
