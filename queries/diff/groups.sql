-- name: groups
-- answers: how do two sets of recordings compare, per group? calls, calls per second, errors, time in getsockopt and exact p50, p90, p99 latency on each side (or in each recording of each side), with calls and errors per time slot of each recording (how bursty each group is)
-- by: comm, level, optname
-- param: slots (int, default 30): time slots each recording's span is cut into
-- param: per_recording (int, default 0): 1 gives one row per group and recording (replicates), 0 one row per group and side
-- columns: <by>, side, recording_id, calls, rate, errors, total_ns, time_rate, slots_with_calls, calls_sq, errors_sq_per_call, q
-- Reads two sides registered on one connection: base_events (side 0) and new_events (side 1),
-- and their recordings tables (each recording's span, analyzer/span.py), so that each
-- recording's slots count from its own start. rate: calls per second, each recording's calls
-- (an exact sum of weights, `runs`) over its own span, added up; time_rate: ns in getsockopt
-- per second, likewise (no sum of per-call fractions, whose last digit would depend on the
-- order an engine adds them in). recording_id is empty with per_recording 0. One GROUP BY over the calls
-- and, in the same pass, one row per (group, side, recording, slot), so that each group's
-- exact quantiles and its per-slot counts come out of a single aggregation without a join on
-- the group keys (which would drop groups whose keys are NULL, e.g. a missing call site).
-- The percentiles of diff: q, the exact p50, p90, p99, from calls counted per (group, side,
-- recording, latency) (queries/lib/percentiles.sql; calls: sums of weights), carried into agg
-- as rows of their own.
-- Rows: one per call (weight: how many calls it stands for; 1 unless grouping by sampled stacks).
WITH sides AS (
    SELECT {keys}, {weight} AS weight, latency_ns, ret, ts_ns, recording_id, recording_span_s,
        0 AS side
    FROM base_events
    UNION ALL
    SELECT {keys}, {weight} AS weight, latency_ns, ret, ts_ns, recording_id, recording_span_s,
        1 AS side
    FROM new_events
),
spans AS (
    SELECT 0 AS side, recording_id, start_ns,
        greatest(1, ceil((end_ns - start_ns) / $slots)) AS slot_ns
    FROM base_recordings
    UNION ALL
    SELECT 1 AS side, recording_id, start_ns,
        greatest(1, ceil((end_ns - start_ns) / $slots)) AS slot_ns
    FROM new_recordings
),
calls AS (
    SELECT {keys}, c.side, c.recording_id AS run,
        CASE WHEN $per_recording = 1 THEN c.recording_id ELSE '' END AS recording_id,
        weight, latency_ns, recording_span_s,
        CASE WHEN ret < 0 THEN weight ELSE 0 END AS error,
        floor((ts_ns - s.start_ns) / s.slot_ns) AS slot
    FROM sides AS c
    JOIN spans AS s ON c.side = s.side AND c.recording_id = s.recording_id
    WHERE weight IS NOT NULL
),
runs AS (
    SELECT {keys}, side, recording_id, sum(weight) AS calls, sum(error) AS errors,
        sum(weight * latency_ns) AS total_ns, max(recording_span_s) AS span_s
    FROM calls
    GROUP BY {keys}, side, recording_id, run
),
slots AS (
    SELECT {keys}, side, recording_id, sum(weight) AS slot_calls, sum(error) AS slot_errors
    FROM calls
    GROUP BY {keys}, side, recording_id, run, slot
),
counts AS (
    SELECT {keys}, side, recording_id, latency_ns, sum(weight) AS n
    FROM calls
    GROUP BY {keys}, side, recording_id, latency_ns
),
ranked AS (
    SELECT *, {ranks(n, latency_ns, {keys}, side, recording_id)}
    FROM counts
),
quantiles AS (
    SELECT {keys}, side, recording_id,
        {percentile(latency_ns, 0.5)} AS p50,
        {percentile(latency_ns, 0.9)} AS p90,
        {percentile(latency_ns, 0.99)} AS p99
    FROM ranked
    GROUP BY {keys}, side, recording_id
),
both_kinds AS (
    SELECT {keys}, side, recording_id, calls, calls / span_s AS per_s, errors, total_ns,
        total_ns / span_s AS time_per_s,
        CAST(NULL AS BIGINT) AS slot_calls, CAST(NULL AS BIGINT) AS slot_errors,
        CAST(NULL AS DOUBLE) AS p50, CAST(NULL AS DOUBLE) AS p90, CAST(NULL AS DOUBLE) AS p99
    FROM runs
    UNION ALL
    SELECT {keys}, side, recording_id, NULL, NULL, NULL, NULL, NULL, slot_calls, slot_errors,
        NULL, NULL, NULL
    FROM slots
    UNION ALL
    SELECT {keys}, side, recording_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, p50, p90, p99
    FROM quantiles
),
agg AS (
    SELECT {keys}, side, recording_id,
        coalesce(sum(calls), 0) AS calls,
        coalesce(sum(per_s), 0) AS rate,
        coalesce(sum(errors), 0) AS errors,
        coalesce(sum(total_ns), 0) AS total_ns,
        coalesce(sum(time_per_s), 0) AS time_rate,
        count(slot_calls) AS slots_with_calls,
        coalesce(sum(slot_calls * slot_calls), 0) AS calls_sq,
        coalesce(sum(slot_errors * slot_errors / slot_calls), 0) AS errors_sq_per_call,
        CASE WHEN count(p50) > 0 THEN [max(p50), max(p90), max(p99)] END AS q
    FROM both_kinds
    GROUP BY {keys}, side, recording_id
),
labelled AS (
    SELECT {labels}, side, recording_id, calls, rate, errors, total_ns, time_rate,
        slots_with_calls, calls_sq, errors_sq_per_call, q
    FROM agg
)
SELECT *
FROM labelled
ORDER BY {names}, side, recording_id
