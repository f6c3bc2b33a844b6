-- name: overall
-- answers: how slow are all the calls together? exact p50, p90, p99 and p99.9 latency over every call (the page's overall distribution, beside the latency report's groups)
-- columns: p50_ns, p90_ns, p99_ns, p999_ns
-- Percentiles as every report takes them (queries/lib/percentiles.sql), over one group: all
-- calls (`whole`, a constant), each row counted as the calls it stands for (`weight`, --max-rate).
-- No calls: one row of NULLs.
WITH counts AS (
    SELECT 0 AS whole, latency_ns, sum(weight) AS n
    FROM events
    GROUP BY latency_ns
),
ranked AS (
    SELECT *, {ranks(n, latency_ns, whole)}
    FROM counts
)
SELECT
    {percentile(latency_ns, 0.5)} AS p50_ns,
    {percentile(latency_ns, 0.9)} AS p90_ns,
    {percentile(latency_ns, 0.99)} AS p99_ns,
    {percentile(latency_ns, 0.999)} AS p999_ns
FROM ranked
