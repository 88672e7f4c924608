-- wrk -s bench/post.lua: POST /api/analyses with one fixed multipart body (image + patient_id).
-- The body file and its boundary come from the environment (bench/server.sh builds them once):
--   BODY_FILE=bench/out/server/body.multipart BOUNDARY=... wrk -s bench/post.lua URL
-- Counts responses by status in every thread; done() prints machine-readable "RESULT" lines.
local path = os.getenv("BODY_FILE")
local boundary = os.getenv("BOUNDARY")
local f = assert(io.open(path, "rb"), "cannot open BODY_FILE " .. tostring(path))
local body = f:read("*a")
f:close()

wrk.method = "POST"
wrk.path = "/api/analyses"
wrk.body = body
wrk.headers["Content-Type"] = "multipart/form-data; boundary=" .. boundary
-- A clinician's API token (bench/server.sh makes one per stack): uploads need a signed-in clinician.
wrk.headers["Authorization"] = "Bearer " .. assert(os.getenv("TOKEN"), "TOKEN is not set")

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  s201, s503, s429, s5xx, sother = 0, 0, 0, 0, 0
end

function response(status, headers, body)
  if status == 201 then s201 = s201 + 1
  elseif status == 503 then s503 = s503 + 1
  elseif status == 429 then s429 = s429 + 1
  elseif status >= 500 then s5xx = s5xx + 1
  else sother = sother + 1 end
end

function done(summary, latency, requests)
  local c = {s201 = 0, s503 = 0, s429 = 0, s5xx = 0, sother = 0}
  for _, t in ipairs(threads) do
    for k, _ in pairs(c) do c[k] = c[k] + (t:get(k) or 0) end
  end
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d rps=%.3f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f mean_ms=%.2f " ..
    "s201=%d s503=%d s429=%d s5xx_other=%d s_other=%d err_connect=%d err_read=%d err_write=%d err_timeout=%d err_status=%d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, latency.mean / 1000,
    c.s201, c.s503, c.s429, c.s5xx, c.sother, e.connect, e.read, e.write, e.timeout, e.status))
end
