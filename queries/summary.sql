-- name: summary
-- answers: what is in this recording? calls, recording span, rate, lost events, hosts, processes, top option and process, error share
-- layout: record
-- columns: events, recordings, hosts, processes, threads, recording_start, recording_end, recording_span_s, first_call, last_call, calls_span_s, calls_per_s, lost, lost_pct, errors, error_pct, options, top_option, top_option_pct, top_comm, top_comm_pct
-- One scan of events into a small per-thread, per-option table; everything else reads that.
-- Spans and rate (analyzer/span.py): recording_span_s runs from the recorder attaching to it
-- stopping, within --since/--until (the `recordings` table; summed over several recordings);
-- calls_span_s from the first call to the last, for information; calls_per_s is each
-- recording's calls over its own recording span, summed over the recordings (each term rounded
-- to a millionth of a call per second and the terms summed as integers, so that the sum does
-- not depend on its order: DuckDB and Spark agree). Counts are sums of `weight` (calls a row
-- stands for: 1 unless recorded with --max-rate).
WITH per_thread AS (
    SELECT host, pid, tid, comm, level, optname, recording_id,
        CAST(sum(weight) AS BIGINT) AS calls,
        CAST(sum(CASE WHEN ret < 0 THEN weight ELSE 0 END) AS BIGINT) AS errors,
        min(ts_ns) AS first_ns,
        max(ts_ns) AS last_ns
    FROM events
    GROUP BY host, pid, tid, comm, level, optname, recording_id
),
per_recording AS (
    SELECT recording_id, sum(calls) AS calls FROM per_thread GROUP BY recording_id
),
rate AS (
    SELECT sum(CAST(round(1e6 * p.calls / r.recording_span_s) AS BIGINT)) / 1e6 AS calls_per_s
    FROM per_recording AS p
    JOIN recordings AS r ON r.recording_id = p.recording_id
),
totals AS (
    SELECT sum(calls) AS events,
        count(DISTINCT host) AS hosts,
        sum(errors) AS errors,
        min(first_ns) AS first_ns,
        max(last_ns) AS last_ns
    FROM per_thread
),
spans AS (
    SELECT count(*) AS recordings,
        min(start_ns) AS start_ns,
        max(end_ns) AS end_ns,
        sum(span_ns) / 1e9 AS recording_span_s
    FROM recordings
),
processes AS (
    SELECT count(*) AS processes FROM (SELECT DISTINCT host, pid FROM per_thread) p
),
threads AS (
    SELECT count(*) AS threads FROM (SELECT DISTINCT host, tid FROM per_thread) t
),
per_option AS (
    SELECT level_label(level) || '/' || optname_label(level, optname) AS opt, sum(calls) AS calls
    FROM per_thread
    GROUP BY level, optname
),
per_comm AS (
    SELECT comm, sum(calls) AS calls FROM per_thread GROUP BY comm
),
top_option AS (
    SELECT opt, calls FROM per_option ORDER BY calls DESC, opt LIMIT 1
),
top_comm AS (
    SELECT comm, calls FROM per_comm ORDER BY calls DESC, comm LIMIT 1
),
lost AS (
    SELECT sum(lost) AS lost FROM files
)
SELECT
    coalesce(t.events, 0) AS events,
    s.recordings,
    t.hosts,
    p.processes,
    th.threads,
    ns_to_time(s.start_ns) AS recording_start,
    ns_to_time(s.end_ns) AS recording_end,
    s.recording_span_s,
    ns_to_time(t.first_ns) AS first_call,
    ns_to_time(t.last_ns) AS last_call,
    (t.last_ns - t.first_ns) / 1e9 AS calls_span_s,
    coalesce(r.calls_per_s, 0) AS calls_per_s,
    l.lost,
    100.0 * l.lost / nullif(t.events + l.lost, 0) AS lost_pct,
    t.errors,
    100.0 * t.errors / nullif(t.events, 0) AS error_pct,
    (SELECT count(*) FROM per_option) AS options,
    o.opt AS top_option,
    100.0 * o.calls / nullif(t.events, 0) AS top_option_pct,
    c.comm AS top_comm,
    100.0 * c.calls / nullif(t.events, 0) AS top_comm_pct
FROM totals t
CROSS JOIN rate r
CROSS JOIN spans s
CROSS JOIN processes p
CROSS JOIN threads th
CROSS JOIN lost l
LEFT JOIN top_option o ON true
LEFT JOIN top_comm c ON true
