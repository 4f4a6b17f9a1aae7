-- wrk script: prints latency percentiles in microseconds on one line, for
-- bench/run to parse (wrk's own --latency output rounds to two decimals).
done = function(summary, latency, requests)
  io.write(string.format("LATENCY p50_us=%d p99_us=%d requests=%d\n",
    latency:percentile(50), latency:percentile(99), summary.requests))
end
