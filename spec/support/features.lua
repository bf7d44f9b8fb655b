-- SPDX-License-Identifier: GPL-2.0-only
-- Print what this kernel offers, one line, for the test summary:
--   features 6.12.117+deb12-amd64: btf=yes fentry=yes kprobe=yes ringbuf=yes tc=yes tcx=yes cgroup=yes
package.path = "lua/?.lua;" .. package.path
package.cpath = "build/?.so;" .. package.cpath
local f = require("tcpinspect").features()
local parts = {}
for _, k in ipairs{ "btf", "fentry", "kprobe", "ringbuf", "tc", "tcx", "cgroup" } do
	parts[#parts + 1] = k .. "=" .. (f[k] and "yes" or "no")
end
print(("features %s: %s"):format(f.kernel, table.concat(parts, " ")))
