-- luacheck configuration for the ACD function library (tests/adapters/test_redis_acd_lua.py).
-- Redis runs Lua 5.1 and gives scripts these globals.
std = "lua51"
read_globals = {
  "redis", "KEYS", "ARGV", "cjson", "cmsgpack", "bit", "struct",
  -- Locals of the prelude functions.py puts before library.lua (constants from Python).
  "LEVEL_WEIGHT", "PRIORITY_BAND", "TAU", "NO_OCC", "MAX_LEVEL", "GRACE", "BATCH", "BATCH_MAX",
  "CHANNELS", "TRANS",
}
-- Redis functions are called with (keys, args); the library passes no keys, so the first
-- parameter is always `_`; unused arguments named `_` are already ignored.
max_line_length = 100
