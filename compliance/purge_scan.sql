-- The purge scan: the deleted contacts past the restore window, with the reason their purge item gives.
-- Parameters: $as_of (the run's clock), $window (restore_window_days), and the vocabulary. A contact is
-- restorable while as_of <= deleted_at + window, so purged once deleted_at + window < as_of.
SELECT contact_id, deleted_at,
       'past the ' || $window || '-day restore window (deleted ' || strftime(deleted_at, '%Y-%m-%d') || ')' AS reason
FROM contact_lifecycle
WHERE state = $state_deleted AND deleted_at + INTERVAL ($window) DAY < CAST($as_of AS TIMESTAMPTZ)
