std = "lua54"
max_line_length = 120
files["spec"] = { std = "+busted" }
exclude_files = { "build" }
-- examples run with the tcpinspect command's prelude (doc/cli.md)
files["examples"] = {
	read_globals = {
		"ACK", "CWR", "ECE", "FIN", "PSH", "RST", "SYN", "URG", "after", "args", "cli",
		"elapsed", "every", "flagstr", "fmt", "getopt", "hist", "json", "map", "metrics", "on_exit",
		"on_conn", "on_packet", "open", "options", "printf", "session", "stats", "stop", "tcpinspect",
		"timer", "topk",
	},
}
files["spec"].max_line_length = 160
