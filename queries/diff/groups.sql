-- name: groups
-- answers: how do two recordings compare, per group? calls, calls per second, errors, time in getsockopt and exact p50, p90, p99 latency on each side, with calls and errors per time slot of each recording (how bursty each group is)
-- by: comm, level, optname
-- param: slots (int, default 30): time slots each recording's span is cut into
-- columns: <by>, base_calls, new_calls, base_rate, new_rate, base_errors, new_errors, base_total_ns, new_total_ns, base_time_rate, new_time_rate, base_rows, new_rows, base_slots_with_calls, new_slots_with_calls, base_calls_sq, new_calls_sq, base_errors_sq_per_call, new_errors_sq_per_call, base_q, new_q
-- Reads two recordings registered side by side: base_events and new_events, and their
-- recordings tables (each recording's span, analyzer/span.py). Rates are sums of weight /
-- recording_span_s (each recording's calls over its own span, added up). One GROUP BY over the
-- calls of both and, in the same pass, one row per (group, side, recording, slot), so that each
-- group's exact quantiles and its per-slot counts come out of a single aggregation without a
-- join on the group keys (which would drop groups whose keys are NULL, e.g. a missing call
-- site). base_q / new_q: the exact p50, p90, p99 (NULL on a side without calls).
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
    SELECT {keys}, c.side, c.recording_id, weight, latency_ns,
        weight / recording_span_s AS per_s,
        CASE WHEN ret < 0 THEN weight ELSE 0 END AS error,
        floor((ts_ns - s.start_ns) / s.slot_ns) AS slot
    FROM sides AS c
    JOIN spans AS s ON c.side = s.side AND c.recording_id = s.recording_id
    WHERE weight IS NOT NULL
),
slots AS (
    SELECT {keys}, side, sum(weight) AS slot_calls, sum(error) AS slot_errors
    FROM calls
    GROUP BY {keys}, side, recording_id, slot
),
both_kinds AS (
    SELECT {keys}, side, weight, per_s, latency_ns, error,
        CAST(NULL AS BIGINT) AS slot_calls, CAST(NULL AS BIGINT) AS slot_errors
    FROM calls
    UNION ALL
    SELECT {keys}, side, NULL, NULL, NULL, NULL, slot_calls, slot_errors
    FROM slots
),
split AS (
    SELECT {keys},
        CASE WHEN side = 0 THEN weight END AS base_weight,
        CASE WHEN side = 1 THEN weight END AS new_weight,
        CASE WHEN side = 0 THEN per_s END AS base_per_s,
        CASE WHEN side = 1 THEN per_s END AS new_per_s,
        CASE WHEN side = 0 THEN error END AS base_error,
        CASE WHEN side = 1 THEN error END AS new_error,
        CASE WHEN side = 0 THEN latency_ns END AS base_latency_ns,
        CASE WHEN side = 1 THEN latency_ns END AS new_latency_ns,
        CASE WHEN side = 0 THEN slot_calls END AS base_slot_calls,
        CASE WHEN side = 1 THEN slot_calls END AS new_slot_calls,
        CASE WHEN side = 0 THEN slot_errors END AS base_slot_errors,
        CASE WHEN side = 1 THEN slot_errors END AS new_slot_errors
    FROM both_kinds
),
agg AS (
    SELECT {keys},
        coalesce(sum(base_weight), 0) AS base_calls,
        coalesce(sum(new_weight), 0) AS new_calls,
        coalesce(sum(base_per_s), 0) AS base_rate,
        coalesce(sum(new_per_s), 0) AS new_rate,
        coalesce(sum(base_error), 0) AS base_errors,
        coalesce(sum(new_error), 0) AS new_errors,
        coalesce(sum(base_weight * base_latency_ns), 0) AS base_total_ns,
        coalesce(sum(new_weight * new_latency_ns), 0) AS new_total_ns,
        coalesce(sum(base_per_s * base_latency_ns), 0) AS base_time_rate,
        coalesce(sum(new_per_s * new_latency_ns), 0) AS new_time_rate,
        count(base_latency_ns) AS base_rows,
        count(new_latency_ns) AS new_rows,
        count(base_slot_calls) AS base_slots_with_calls,
        count(new_slot_calls) AS new_slots_with_calls,
        coalesce(sum(base_slot_calls * base_slot_calls), 0) AS base_calls_sq,
        coalesce(sum(new_slot_calls * new_slot_calls), 0) AS new_calls_sq,
        coalesce(sum(base_slot_errors * base_slot_errors / base_slot_calls), 0)
            AS base_errors_sq_per_call,
        coalesce(sum(new_slot_errors * new_slot_errors / new_slot_calls), 0)
            AS new_errors_sq_per_call,
        quantile_cont(base_latency_ns, [0.5, 0.9, 0.99]) AS base_q,
        quantile_cont(new_latency_ns, [0.5, 0.9, 0.99]) AS new_q
    FROM split
    GROUP BY {keys}
),
labelled AS (
    SELECT {labels}, base_calls, new_calls, base_rate, new_rate, base_errors, new_errors,
        base_total_ns, new_total_ns, base_time_rate, new_time_rate, base_rows, new_rows,
        base_slots_with_calls, new_slots_with_calls, base_calls_sq, new_calls_sq,
        base_errors_sq_per_call, new_errors_sq_per_call, base_q, new_q
    FROM agg
)
SELECT *
FROM labelled
ORDER BY {names}
