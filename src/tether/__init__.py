"""tether: a production runtime for Claude agents."""
