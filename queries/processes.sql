-- name: processes
-- answers: which processes (or threads, --by tid,comm) call getsockopt, how often and how slowly?
-- by: host, pid, comm
-- param: top (int, default 20): processes to show
-- columns: <by>, calls, calls_per_s, errors, options, mean_ns, p99_ns, max_ns, first_time, last_time
WITH spans AS (
    -- calls_per_s: calls over the recorded time of the recordings the process appears in (a
    -- recording's span from its files' metadata), so that reading several recordings together
    -- does not divide one recording's calls by the others' time; spans are summed as integers,
    -- so that the result does not depend on the order of the sum
    SELECT recording_id, max(end_ns) - min(start_ns) AS span_ns
    FROM files
    GROUP BY recording_id
),
grouped AS (
    SELECT {keys}, {weight} AS weight, latency_ns, ret, ts_ns, recording_id,
        row(level, optname) AS option
    FROM events
),
per_recording AS (
    SELECT {keys}, g.recording_id, sum(weight) AS calls, max(s.span_ns) AS span_ns
    FROM grouped AS g
    JOIN spans AS s ON s.recording_id = g.recording_id
    WHERE weight IS NOT NULL
    GROUP BY {keys}, g.recording_id
),
rates AS (
    SELECT {keys}, sum(calls) / nullif(sum(span_ns) / 1e9, 0) AS calls_per_s
    FROM per_recording
    GROUP BY {keys}
),
agg AS (
    SELECT {keys},
        sum(weight) AS calls,
        sum(CASE WHEN ret < 0 THEN weight ELSE 0 END) AS errors,
        count(DISTINCT option) AS options,
        CAST(sum(latency_ns) AS DOUBLE) / count(latency_ns) AS mean_ns,
        max(latency_ns) AS max_ns,
        min(ts_ns) AS first_ns,
        max(ts_ns) AS last_ns
    FROM grouped
    WHERE weight IS NOT NULL
    GROUP BY {keys}
),
counts AS (
    SELECT {keys}, latency_ns, count(*) AS n
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
