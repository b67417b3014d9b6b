-- The plan's decision: one outcome and reason per source and candidate contact (or unmatched request subject).
-- Parameters: $remove_when_active (the active-enrollment policy is `remove`), and the vocabulary.
-- Campaign and workflow-enrollment statuses are the CRM's own values (compliance.schema), written as they come.
-- An admin acts only on contacts of their locations (staff.location_ids; empty or NULL: every location): a contact
-- outside them is rejected whatever else holds, so that nothing of it changes (not even a legal erasure's
-- suppression of an already-deleted contact).
CREATE OR REPLACE TABLE plan_items AS
-- Blockers of the candidates only: aggregating every contact's enrollments scanned the store for nothing.
WITH blockers AS (
    SELECT contact_id, string_agg(what, '; ' ORDER BY what) AS names FROM (
        SELECT e.contact_id, 'active campaign ' || k.campaign_id || ' (' || k.name || ')' AS what
        FROM campaign_enrollments e JOIN campaigns k USING (campaign_id)
        WHERE k.status = 'active' AND e.contact_id IN (SELECT contact_id FROM plan_candidates)
        UNION ALL
        SELECT e.contact_id, 'active workflow ' || w.workflow_id || ' (' || w.name || ')'
        FROM workflow_enrollments e JOIN workflows w USING (workflow_id)
        WHERE e.status = 'active' AND e.contact_id IN (SELECT contact_id FROM plan_candidates))
    GROUP BY contact_id),
erased AS (
    SELECT key_hash FROM suppression UNION SELECT contact_hash FROM purged_contacts),
unmatched AS (
    SELECT c.bulk_action_id, c.subject_no, bool_or(h.key_hash IS NOT NULL) AS erased_before
    FROM plan_candidates c JOIN plan_sources s USING (bulk_action_id)
    JOIN pending_subjects p ON p.request_id = s.source_ref AND p.subject_no = c.subject_no
    LEFT JOIN erased h ON h.key_hash IN (retention_keyed_hash('contact_id', p.contact_id),
                                         retention_keyed_hash('email', p.email_key),
                                         retention_keyed_hash('phone', p.phone_key))
    WHERE c.contact_id IS NULL GROUP BY ALL),
candidates AS (
    SELECT DISTINCT ON (bulk_action_id, coalesce(contact_id, 'subject:' || subject_no))
           bulk_action_id, contact_id, subject_no, subject
    FROM plan_candidates ORDER BY bulk_action_id, coalesce(contact_id, 'subject:' || subject_no), subject_no),
facts AS (
    SELECT c.bulk_action_id, c.contact_id, c.subject, s.ord, s.source, s.rejection, s.legal, s.preview,
           s.regulation, k.contact_id IS NOT NULL AS in_store,
           coalesce(lc.state = $state_deleted, false) AS is_deleted, lc.deleted_at,
           coalesce(u.erased_before, false)
               OR (s.source_kind = $source_manual AND c.contact_id IS NOT NULL AND k.contact_id IS NULL
                   AND retention_keyed_hash('contact_id', c.contact_id) IN (SELECT key_hash FROM erased))
               AS erased_before,
           b.names AS blockers, s.requested_by, k.location_id,
           retention_out_of_scope(st.location_ids, k.location_id) AS out_of_scope
    FROM candidates c JOIN plan_sources s USING (bulk_action_id)
    LEFT JOIN staff st ON st.user_id = s.requested_by
    LEFT JOIN contacts k ON k.contact_id = c.contact_id
    LEFT JOIN contact_lifecycle lc ON lc.contact_id = c.contact_id
    LEFT JOIN blockers b ON b.contact_id = c.contact_id
    LEFT JOIN unmatched u ON u.bulk_action_id = c.bulk_action_id AND u.subject_no = c.subject_no
                          AND c.contact_id IS NULL),
proposed AS (
    SELECT *, CASE
        WHEN rejection IS NOT NULL THEN $outcome_rejected
        WHEN NOT in_store THEN CASE WHEN erased_before THEN $outcome_already_done ELSE $outcome_not_found END
        WHEN out_of_scope THEN $outcome_rejected
        WHEN is_deleted THEN $outcome_already_done
        WHEN blockers IS NOT NULL AND NOT (legal OR $remove_when_active) THEN $outcome_blocked
        ELSE $outcome_deleted END AS proposal
    FROM facts),
claimed AS (
    SELECT *, min(ord) FILTER (WHERE proposal = $outcome_deleted AND NOT preview)
                  OVER (PARTITION BY contact_id) AS winner_ord,
              arg_min(source, ord) FILTER (WHERE proposal = $outcome_deleted AND NOT preview)
                  OVER (PARTITION BY contact_id) AS winner
    FROM proposed)
SELECT bulk_action_id, contact_id,
       CASE WHEN proposal = $outcome_deleted AND winner_ord < ord THEN $outcome_already_done ELSE proposal END
           AS outcome,
       CASE
         WHEN proposal = $outcome_rejected AND rejection IS NOT NULL THEN rejection
         WHEN proposal = $outcome_rejected THEN
             requested_by || ' is not an admin of location ' || coalesce(location_id, '(none)')
         WHEN proposal = $outcome_not_found AND contact_id IS NULL THEN subject || ' matches no contact'
         WHEN proposal = $outcome_not_found THEN 'no contact ' || contact_id || ' in the store'
         WHEN proposal = $outcome_already_done AND NOT in_store THEN
             coalesce(subject || ': ', '') || 'already erased and purged'
         WHEN proposal = $outcome_already_done THEN 'already deleted on ' || strftime(deleted_at, '%Y-%m-%d')
         WHEN proposal = $outcome_deleted AND winner_ord < ord THEN 'deleted in this run by ' || winner
         WHEN proposal = $outcome_blocked THEN 'in ' || blockers || ': remove the contact from it first'
         WHEN blockers IS NOT NULL AND legal THEN
             'legal erasure (' || regulation || '): removed from ' || blockers || ', then deleted'
         WHEN blockers IS NOT NULL THEN 'removed from ' || blockers || ', then deleted'
       END AS reason
FROM claimed
