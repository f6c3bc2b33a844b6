-- name: replicates
-- answers: how does each group vary between the recordings (replicates) of each side? per group, side and recording: calls, errors, time in getsockopt, exact p50, p90, p99, and calls and errors per time slot of that recording
-- by: comm, level, optname
-- param: slots (int, default 30): time slots each recording's span is cut into
-- columns: <by>, side, recording_id, calls, errors, total_ns, slots_with_calls, calls_sq, errors_sq_per_call, q
-- Reads base_events (side 0), new_events (side 1) and their recordings tables (each
-- recording's span, analyzer/span.py), so that each recording's slots count from its own
-- start. As in groups.sql, the per-slot counts come out of the same aggregation as the
-- quantiles (no join on the group keys, which would drop groups whose keys are NULL).
-- The column q holds the exact p50, p90, p99 of the recording's calls.
WITH sides AS (
    SELECT {keys}, {weight} AS weight, latency_ns, ret, ts_ns, 0 AS side, recording_id
    FROM base_events
    UNION ALL
    SELECT {keys}, {weight} AS weight, latency_ns, ret, ts_ns, 1 AS side, recording_id
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
    SELECT {keys}, c.side, c.recording_id, weight, latency_ns,
        CASE WHEN ret < 0 THEN weight ELSE 0 END AS error,
        floor((ts_ns - s.start_ns) / s.slot_ns) AS slot
    FROM sides AS c
    JOIN spans AS s ON c.side = s.side AND c.recording_id = s.recording_id
    WHERE weight IS NOT NULL
),
slots AS (
    SELECT {keys}, side, recording_id, sum(weight) AS slot_calls, sum(error) AS slot_errors
    FROM calls
    GROUP BY {keys}, side, recording_id, slot
),
both_kinds AS (
    SELECT {keys}, side, recording_id, weight, latency_ns, error,
        CAST(NULL AS BIGINT) AS slot_calls, CAST(NULL AS BIGINT) AS slot_errors
    FROM calls
    UNION ALL
    SELECT {keys}, side, recording_id, NULL, NULL, NULL, slot_calls, slot_errors
    FROM slots
),
agg AS (
    SELECT {keys}, side, recording_id,
        coalesce(sum(weight), 0) AS calls,
        coalesce(sum(error), 0) AS errors,
        coalesce(sum(weight * latency_ns), 0) AS total_ns,
        count(slot_calls) AS slots_with_calls,
        coalesce(sum(slot_calls * slot_calls), 0) AS calls_sq,
        coalesce(sum(slot_errors * slot_errors / slot_calls), 0) AS errors_sq_per_call,
        quantile_cont(latency_ns, [0.5, 0.9, 0.99]) AS q
    FROM both_kinds
    GROUP BY {keys}, side, recording_id
),
labelled AS (
    SELECT {labels}, side, recording_id, calls, errors, total_ns, slots_with_calls, calls_sq,
        errors_sq_per_call, q
    FROM agg
)
SELECT *
FROM labelled
ORDER BY {names}, side, recording_id
