-- name: percentiles
-- answers: exact percentiles of a value per group, as quantile_cont defines them (linear interpolation between the two nearest ranks), from rows counted per (group, value): memory grows with distinct values, not calls, and no engine needs a whole group in one task
-- columns: rank_end, group_rows (ranks); one DOUBLE (percentile)
-- The one definition of percentiles in the canned queries: a query counts its calls per
-- (group, value) in a CTE (`sum(weight) AS n ... GROUP BY <group>, latency_ns`: a row of a
-- --max-rate recording stands for `weight` calls), selects `{ranks(n, latency_ns, <group>)}`
-- from it, and aggregates those rows per group with
-- `{percentile(latency_ns, 0.99)}` (one per percentile, beside sums and max of the counts).
-- For a fraction f of a group of N rows, quantile_cont takes RN = (N - 1) * f (in DOUBLE), the
-- values at 0-based ranks floor(RN) and ceil(RN) of the sorted rows, lo and hi, and returns
-- lo * (1 - d) + hi * d, d = RN - floor(RN). The value at rank k is the smallest value whose
-- running count (rank_end: rows with a value at or below it) exceeds k. Where floor(RN) =
-- ceil(RN), d is 0 and the result is lo. All in IEEE doubles, so every engine gets the same bits.
-- With weights, the counts are sums of weights and N their total: exactly quantile_cont over
-- the rows each repeated `weight` times (a weighted quantile; tests/unit/test_weights.py).
-- define: ranks(count, value, partition...)
sum({count}) OVER (PARTITION BY {partition} ORDER BY {value}
    ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS rank_end,
sum({count}) OVER (PARTITION BY {partition}) AS group_rows
-- define: percentile(value, fraction)
(CAST(min(CASE WHEN rank_end > floor((group_rows - 1) * CAST({fraction} AS DOUBLE))
        THEN {value} END) AS DOUBLE)
    * (1.0 - ((max(group_rows) - 1) * CAST({fraction} AS DOUBLE)
        - floor((max(group_rows) - 1) * CAST({fraction} AS DOUBLE))))
 + CAST(min(CASE WHEN rank_end > ceil((group_rows - 1) * CAST({fraction} AS DOUBLE))
        THEN {value} END) AS DOUBLE)
    * ((max(group_rows) - 1) * CAST({fraction} AS DOUBLE)
        - floor((max(group_rows) - 1) * CAST({fraction} AS DOUBLE))))
