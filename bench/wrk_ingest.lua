-- wrk script for bench_ingest.py: realistic Segment events with fresh messageIds and
-- ~20 real User-Agent strings, optionally paced to a fixed request rate.
--
--   wrk -s wrk_ingest.lua URL -- MODE PREFIX AUTH [BATCH] [RATE_PER_CONNECTION]
--
-- MODE is "track" (POST /v1/track, one event) or "batch" (POST /v1/batch, BATCH
-- events). PREFIX makes messageIds unique across runs; AUTH is the Authorization
-- header. With RATE_PER_CONNECTION > 0 each thread (run one connection per thread)
-- sends at that many requests a second. done() prints one "KANAL_RESULT {json}" line.

local user_agents = {
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.0.0 Safari/537.36 Edg/123.0.2420.81",
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15",
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.4; rv:125.0) Gecko/20100101 Firefox/125.0",
  "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
  "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1",
  "Mozilla/5.0 (iPhone; CPU iPhone OS 16_7_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/124.0.6367.88 Mobile/15E148 Safari/604.1",
  "Mozilla/5.0 (iPad; CPU OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1",
  "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
  "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.6312.118 Mobile Safari/537.36",
  "Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
  "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-A546B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36",
  "Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
  "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
  "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 OPR/110.0.0.0",
}

local products = {
  {"sku-1001", "Blue Linen Shirt", "29.90", "shirts"},
  {"sku-2044", "Wool Socks (3 pack)", "12.50", "socks"},
  {"sku-3310", "Canvas Tote Bag", "18.00", "bags"},
  {"sku-4187", "Leather Belt", "39.00", "accessories"},
  {"sku-5502", "Rain Jacket", "119.00", "outerwear"},
}

-- One track event as analytics.js sends it (the User-Agent comes from the header).
local event_format = '{"type":"track","event":"Product Added","messageId":"%s-%d",'
  .. '"anonymousId":"anon-%d","timestamp":"2026-05-04T10:15:%02d.123Z",'
  .. '"sentAt":"2026-05-04T10:15:%02d.456Z",'
  .. '"properties":{"product_id":"%s","name":"%s","price":%s,"quantity":1,'
  .. '"currency":"EUR","category":"%s","cart_id":"cart-%d"},'
  .. '"context":{"library":{"name":"analytics.js","version":"2.11.1"},"locale":"sv-SE",'
  .. '"page":{"path":"/products/%s","referrer":"https://www.google.com/",'
  .. '"title":"%s","url":"https://shop.example.se/products/%s?utm_source=newsletter&utm_medium=email&utm_campaign=spring"},'
  .. '"screen":{"width":1440,"height":900},"timezone":"Europe/Stockholm"}}'

local thread_counter = 0
function setup(thread)
  thread_counter = thread_counter + 1
  thread:set("thread_id", thread_counter)
end

local mode, prefix, auth, batch_size, interval
local counter = 0
local next_due = nil
local now_ms = nil

function init(args)
  mode = args[1] or "track"
  prefix = (args[2] or "wrk") .. "-" .. tostring(thread_id or 0)
  auth = args[3]
  batch_size = tonumber(args[4] or "100")
  local rate = tonumber(args[5] or "0")
  if rate > 0 then
    interval = 1000.0 / rate
    local ffi = require("ffi")
    ffi.cdef[[
      typedef struct { long tv_sec; long tv_nsec; } kanal_timespec;
      int clock_gettime(int clk_id, kanal_timespec *tp);
    ]]
    local ts = ffi.new("kanal_timespec")
    now_ms = function()
      ffi.C.clock_gettime(1, ts)  -- CLOCK_MONOTONIC
      return tonumber(ts.tv_sec) * 1000.0 + tonumber(ts.tv_nsec) / 1e6
    end
  end
end

local function event()
  counter = counter + 1
  local p = products[(counter % #products) + 1]
  local second = counter % 60
  return string.format(event_format, prefix, counter, counter % 5000, second, second,
                       p[1], p[2], p[3], p[4], counter % 997, p[1], p[2], p[1])
end

function request()
  local headers = {
    ["Content-Type"] = "application/json",
    ["User-Agent"] = user_agents[(counter % #user_agents) + 1],
  }
  if auth and auth ~= "" then headers["Authorization"] = auth end
  if mode == "batch" then
    local items = {}
    for i = 1, batch_size do items[i] = event() end
    local body = '{"batch":[' .. table.concat(items, ",") .. '],'
      .. '"sentAt":"2026-05-04T10:15:59.000Z"}'
    return wrk.format("POST", "/v1/batch", headers, body)
  end
  return wrk.format("POST", "/v1/track", headers, event())
end

function delay()
  if not interval then return 0 end
  local now = now_ms()
  if next_due == nil or now - next_due > 1000 then next_due = now end
  next_due = next_due + interval
  local wait = next_due - now
  if wait < 0 then return 0 end
  return math.floor(wait)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'KANAL_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,'
    .. '"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,'
    .. '"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean))
end
