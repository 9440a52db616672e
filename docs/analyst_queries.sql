-- Open events by severity: what is going on right now, worst first (the state as it stood at an as-of tick:
-- `make demo` rebuilds one with `python -m jobs.stages.hydrate_minority_reports --as-of ...`).
SELECT as_of, cohort_name, store_count AS stores, report_count AS reports, round(severity, 2) AS severity,
       cause_category AS cause, round(confidence_score, 2) AS confidence, window_start
FROM mrs.minority_events_as_of
WHERE event_status = 'active' AND run_id = coalesce((SELECT max_by(run_id, seq) FROM mrs.demo_run_config), 'demo-001')
  AND as_of = (SELECT max(as_of) FROM mrs.minority_events_as_of)
ORDER BY severity DESC, window_start
LIMIT 10;

-- Events by cause in the latest week of data: how many, how big, how sure.
SELECT cause_category AS cause, count(*) AS events, sum(report_count) AS reports, sum(store_count) AS store_events,
       round(sum(attributed_sales_total - baseline_sales_total)) AS excess_units, round(avg(confidence_score), 2) AS avg_confidence
FROM mrs.active_minority_events
WHERE event_status != 'merged'
  AND window_start >= date_trunc('WEEK', (SELECT max(window_start) FROM mrs.active_minority_events))
GROUP BY cause_category
ORDER BY events DESC, cause;

-- The largest multi-store events: their stores side by side (aligned store_id_N / retailer_N pairs).
SELECT cohort_name, cohort_reason, store_count AS stores, store_id_1, store_id_2, store_id_3, store_id_4,
       retailer_1, date_format(window_start, 'MM-dd HH:mm') AS start, date_format(window_end, 'MM-dd HH:mm') AS end
FROM mrs.active_minority_events
WHERE store_count > 1
ORDER BY store_count DESC, window_start
LIMIT 8;

-- One report's full history across the logs: detection, clustering, attribution and its event, tick by tick
-- (the first ticks of the most severe report of a multi-store event).
WITH r AS (
  SELECT report_id FROM mrs.active_minority_reports WHERE cohort_size > 1 ORDER BY severity DESC, report_id LIMIT 1
)
SELECT date_format(written_at, 'MM-dd HH:mm') AS tick, log, status, value, detail FROM (
  SELECT written_at, 'MRDL' AS log, report_status AS status, round(severity, 2) AS value,
         concat(direction, ', ', round(attributed_sales_total), ' vs ', round(baseline_sales_total), ' units') AS detail
  FROM mrs.minority_reports_detected_log WHERE report_id = (SELECT report_id FROM r)
  UNION ALL
  SELECT written_at, 'MRCL', report_status, round(similarity_score, 2), cluster_name
  FROM mrs.minority_reports_clustered_log WHERE report_id = (SELECT report_id FROM r)
  UNION ALL
  SELECT written_at, 'MRPAL', confidence_tier, round(confidence_score, 2), proposed_cause_category
  FROM mrs.minority_reports_proposed_attribution_log WHERE report_id = (SELECT report_id FROM r)
  UNION ALL
  SELECT written_at, 'MRCH', event_status, cohort_size, cohort_name
  FROM mrs.minority_reports_cohorted_log WHERE report_id = (SELECT report_id FROM r)
)
ORDER BY written_at, log
LIMIT 16;

-- The event registry: every state change of the events of one day.
SELECT date_format(written_at, 'MM-dd HH:mm') AS tick, substr(event_id, 1, 12) AS event, change, event_status AS status,
       store_count AS stores, report_count AS reports, substr(merged_into, 1, 12) AS merged_into
FROM mrs.minority_event_log
WHERE run_id = coalesce((SELECT max_by(run_id, seq) FROM mrs.demo_run_config), 'demo-001')
  AND date = coalesce((SELECT min(date) FROM mrs.minority_event_log WHERE change IN ('merged', 'reopened')),
                      (SELECT min(date) FROM mrs.minority_event_log))
ORDER BY written_at, event
LIMIT 15;

-- The review queue: reports awaiting an analyst (weekend mode confirmed the confident weekend ones), worst first.
SELECT report_id, store_id, sku, severity, impact_units, proposed_cause_category AS cause, confidence_score AS conf,
       confidence_tier AS tier, window_start
FROM mrs.review_queue
LIMIT 10;

-- Who decided what: review statuses and where each report's cause came from (model, analyst, automation).
SELECT review_status, field_sources['proposed_cause_category'] AS cause_from, model_source, count(*) AS reports
FROM mrs.active_minority_reports
GROUP BY review_status, field_sources['proposed_cause_category'], model_source
ORDER BY reports DESC;

-- Alerts sent: per trigger, how many events and recipients, and the first tick each trigger fired.
SELECT trigger_condition, count(DISTINCT event_id) AS events, count(*) AS notifications,
       count(DISTINCT delivered_to) AS recipients, min(written_at) AS first_at
FROM mrs.ui_notifications_log
WHERE run_id = coalesce((SELECT max_by(run_id, seq) FROM mrs.demo_run_config), 'demo-001')
GROUP BY trigger_condition
ORDER BY notifications DESC;

-- Pipeline health per run: freshness, coverage, error rate and what went wrong.
SELECT interval_start, interval_end, health_status, round(freshness_lag_minutes) AS lag_min, round(coverage, 3) AS coverage,
       round(error_rate, 4) AS error_rate, rows_written['minority_reports_detected_log'] AS mrdl_rows, problems
FROM mrs.pipeline_health_log
WHERE run_id = coalesce((SELECT max_by(run_id, seq) FROM mrs.demo_run_config), 'demo-001')
ORDER BY interval_start DESC
LIMIT 5;
