-- The restore decision: one outcome and reason per restore source and candidate contact.
-- Parameters: $as_of (the run's clock), $window (restore_window_days), and the vocabulary. A contact is
-- restorable while as_of <= deleted_at + window (inclusive). An admin restores only contacts of their locations
-- (staff.location_ids; empty or NULL: every location); another location's contact is rejected.
CREATE OR REPLACE TABLE restore_items AS
WITH facts AS (
    SELECT DISTINCT c.bulk_action_id, c.contact_id, c.subject, s.ord, s.rejection,
           lc.state, lc.deleted_at, lc.restored_at, k.contact_id IS NOT NULL AS in_store,
           p.purged_at, s.requested_by, k.location_id,
           retention_out_of_scope(st.location_ids, k.location_id) AS out_of_scope
    FROM restore_candidates c JOIN restore_sources s USING (bulk_action_id)
    LEFT JOIN staff st ON st.user_id = s.requested_by
    LEFT JOIN contact_lifecycle lc ON lc.contact_id = c.contact_id
    LEFT JOIN contacts k ON k.contact_id = c.contact_id
    LEFT JOIN purged_contacts p ON p.contact_hash = retention_keyed_hash('contact_id', c.contact_id)),
proposed AS (
    SELECT *, CASE
        WHEN rejection IS NOT NULL THEN $outcome_rejected
        WHEN purged_at IS NOT NULL THEN $outcome_rejected
        WHEN in_store AND out_of_scope THEN $outcome_rejected
        WHEN state = $state_deleted AND CAST($as_of AS TIMESTAMPTZ) <= deleted_at + INTERVAL ($window) DAY
            THEN $outcome_restored
        WHEN state = $state_deleted THEN $outcome_rejected
        WHEN restored_at IS NOT NULL AND in_store THEN $outcome_already_done
        WHEN in_store THEN $outcome_rejected
        ELSE $outcome_not_found END AS proposal
    FROM facts),
claimed AS (
    -- Only a source that would restore the contact claims it; a refused one must not.
    SELECT *, row_number() OVER (PARTITION BY contact_id, proposal = $outcome_restored ORDER BY ord) AS claim
    FROM proposed)
SELECT bulk_action_id,
       CASE WHEN purged_at IS NOT NULL OR NOT in_store THEN NULL ELSE contact_id END AS contact_id,
       CASE WHEN proposal = $outcome_restored AND claim > 1 THEN $outcome_already_done ELSE proposal END AS outcome,
       CASE
         WHEN proposal = $outcome_rejected AND rejection IS NOT NULL THEN rejection
         WHEN proposal = $outcome_rejected AND purged_at IS NOT NULL THEN
             coalesce(subject || ': ', '') || 'purged on ' || strftime(purged_at, '%Y-%m-%d')
             || ', past the ' || $window || '-day window: it cannot be restored'
         WHEN proposal = $outcome_rejected AND out_of_scope THEN
             requested_by || ' is not an admin of location ' || coalesce(location_id, '(none)')
         WHEN proposal = $outcome_rejected AND state = $state_deleted THEN
             'outside the ' || $window || '-day restore window: deleted ' || strftime(deleted_at, '%Y-%m-%d')
             || ', restorable until ' || strftime(deleted_at + INTERVAL ($window) DAY, '%Y-%m-%d %H:%M')
         WHEN proposal = $outcome_rejected THEN 'not deleted: nothing to restore'
         WHEN proposal = $outcome_not_found THEN coalesce(subject, 'contact ' || contact_id) || ' matches no contact'
         WHEN proposal = $outcome_already_done THEN 'already restored on ' || strftime(restored_at, '%Y-%m-%d')
         WHEN claim > 1 THEN 'restored in this run by an earlier request'
       END AS reason
FROM claimed
