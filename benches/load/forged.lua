-- Forged-token flood for the load benchmark (benches/load, `loadbench`): every request carries
-- a different well-formed token, with valid check digits, that no key has.
--
--   wrk -t1 -c32 -d5s -s forged.lua http://127.0.0.1:PORT/ FILE FIRST COUNT [FORWARDED_FOR]
--
-- FILE holds distinct tokens, one per line, all of the same length (the driver writes it).
-- Thread n sends the tokens FIRST + n * COUNT .. FIRST + (n + 1) * COUNT - 1, in order, each
-- once; it starts over only if it runs out, and `done` reports how many were sent again. The
-- file must hold them all.
-- FORWARDED_FOR, if given, is sent as `X-Forwarded-For` (the client identity behind a trusted
-- proxy). `done` prints one line for the driver:
--
--   forged used <tokens sent> repeated <tokens sent again> span <file lines consumed>
--
-- No `response` function: wrk then parses no headers into Lua, so the client costs about what
-- a static `-H` run costs plus one string concatenation per request.

local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

-- Tokens are read in chunks, so that the Lua heap stays small: with a large live heap,
-- LuaJIT's collector lets the request strings pile up and then stalls the client to sweep them.
local CHUNK = 4096

local file, width, first_byte, count, remaining
local data, pos, last, head, tail

-- Reads the next chunk of this thread's tokens; after the last one, starts over.
local function refill()
  if remaining == 0 then
    file:seek("set", first_byte)
    remaining = count
  end
  local n = math.min(CHUNK, remaining)
  data = file:read(n * width) or ""
  remaining = remaining - n
  pos = 1
  last = #data - width + 1
  assert(last >= 1, "the token file holds no tokens for this thread")
end

function init(args)
  local path = args[1]
  local first = tonumber(args[2])
  count = tonumber(args[3])
  local forwarded = args[4]
  file = assert(io.open(path, "rb"))
  local line = assert(file:read("*l"), "the token file is empty")
  width = #line + 1
  first_byte = (first + id * count) * width
  file:seek("set", first_byte)
  remaining = count
  refill()

  local headers = {}
  for name, value in pairs(wrk.headers) do
    headers[name] = value
  end
  if forwarded and forwarded ~= "" then
    headers["X-Forwarded-For"] = forwarded
  end
  -- wrk.format ends the head with an empty line; the Authorization header goes before it.
  head = wrk.format("GET", wrk.path, headers):sub(1, -3) .. "Authorization: Bearer "
  tail = "\r\n\r\n"
  -- Globals, which `done` reads through thread:get.
  used = 0
  count_per_thread = count
end

function request()
  if pos > last then
    refill()
  end
  local token = data:sub(pos, pos + width - 2)
  pos = pos + width
  used = used + 1
  return head .. token .. tail
end

function done(summary, latency, requests)
  local used_total, repeated, span = 0, 0, 0
  for _, thread in ipairs(threads) do
    local id = thread:get("id")
    local used = thread:get("used")
    local count = thread:get("count_per_thread")
    used_total = used_total + used
    repeated = repeated + math.max(0, used - count)
    local reach = id * count + math.min(used, count)
    if reach > span then
      span = reach
    end
  end
  io.write(string.format("forged used %d repeated %d span %d\n", used_total, repeated, span))
end
