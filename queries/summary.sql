-- name: summary
-- answers: what is in this recording? events, time span, rate, lost events, hosts, processes, top option and process, error share
-- layout: record
-- columns: events, hosts, processes, threads, first_time, last_time, span_s, calls_per_s, lost, lost_pct, errors, error_pct, options, top_option, top_option_pct, top_comm, top_comm_pct
-- One scan of events into a small per-thread, per-option table; everything else reads that.
WITH per_thread AS (
    SELECT host, pid, tid, comm, level, optname,
        count(*) AS calls,
        sum(CASE WHEN ret < 0 THEN 1 ELSE 0 END) AS errors,
        min(ts_ns) AS first_ns,
        max(ts_ns) AS last_ns
    FROM events
    GROUP BY host, pid, tid, comm, level, optname
),
totals AS (
    SELECT sum(calls) AS events,
        count(DISTINCT host) AS hosts,
        sum(errors) AS errors,
        min(first_ns) AS first_ns,
        max(last_ns) AS last_ns
    FROM per_thread
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
    t.events,
    t.hosts,
    p.processes,
    th.threads,
    ns_to_time(t.first_ns) AS first_time,
    ns_to_time(t.last_ns) AS last_time,
    (t.last_ns - t.first_ns) / 1e9 AS span_s,
    t.events / nullif((t.last_ns - t.first_ns) / 1e9, 0) AS calls_per_s,
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
CROSS JOIN processes p
CROSS JOIN threads th
CROSS JOIN lost l
LEFT JOIN top_option o ON true
LEFT JOIN top_comm c ON true
