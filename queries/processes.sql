-- name: processes
-- answers: which processes (or threads, --by tid,comm) call getsockopt, how often and how slowly?
-- by: host, pid, comm
-- param: top (int, default 20): processes to show (0: all)
-- columns: <by>, calls, calls_per_s, errors, options, mean_ns, p99_ns, max_ns, first_time, last_time
-- drop: last_time, first_time, options, mean_ns, max_ns
-- calls_per_s (analyzer/span.py): each recording's calls over its own recording span, summed over
-- the recordings; each term is rounded to a millionth of a call per second and the terms are
-- summed as integers, so that the sum does not depend on its order (DuckDB and Spark agree).
WITH grouped AS (
    SELECT {keys}, {weight} AS weight, latency_ns, ret, ts_ns, recording_id,
        row(level, optname) AS option
    FROM events
),
per_recording AS (
    SELECT {keys}, g.recording_id, sum(weight) AS calls, max(r.recording_span_s) AS seconds
    FROM grouped AS g
    JOIN (SELECT recording_id, recording_span_s FROM recordings) AS r
        ON r.recording_id = g.recording_id
    WHERE weight IS NOT NULL
    GROUP BY {keys}, g.recording_id
),
rates AS (
    SELECT {keys}, sum(CAST(round(1e6 * calls / seconds) AS BIGINT)) / 1e6 AS calls_per_s
    FROM per_recording
    GROUP BY {keys}
),
agg AS (
    SELECT {keys},
        sum(weight) AS calls,
        sum(CASE WHEN ret < 0 THEN weight ELSE 0 END) AS errors,
        count(DISTINCT option) AS options,
        CAST(sum(latency_ns * weight) AS DOUBLE) / sum(weight) AS mean_ns,
        max(latency_ns) AS max_ns,
        min(ts_ns) AS first_ns,
        max(ts_ns) AS last_ns
    FROM grouped
    WHERE weight IS NOT NULL
    GROUP BY {keys}
),
counts AS (
    SELECT {keys}, latency_ns, sum(weight) AS n
    FROM grouped
    WHERE weight IS NOT NULL
    GROUP BY {keys}, latency_ns
),
ranked AS (
    SELECT *, {ranks(n, latency_ns, {keys})}
    FROM counts
),
latencies AS (
    SELECT {keys}, {percentile(latency_ns, 0.99)} AS p99_ns
    FROM ranked
    GROUP BY {keys}
),
labelled AS (
    SELECT {labels}, agg.calls,
        rates.calls_per_s,
        errors, options, mean_ns,
        latencies.p99_ns,
        max_ns,
        ns_to_time(first_ns) AS first_time,
        ns_to_time(last_ns) AS last_time
    FROM agg
    JOIN rates USING ({keys})
    JOIN latencies USING ({keys})
)
SELECT *
FROM labelled
ORDER BY calls DESC, {names}
LIMIT $top
