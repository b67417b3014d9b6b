"""One step sequence: the job runs compliance.steps in DAILY_RUN's order, and the benchmark runs the same list."""

import dagster as dg

from benchmarks.direct import MIRRORED
from compliance import steps
from pipelines.definitions import defs
from support.crm import AS_OF, write_snapshot


def job_steps(result: dg.ExecuteInProcessResult) -> list[str]:
    return [event.step_key for event in result.all_events if event.event_type == dg.DagsterEventType.STEP_START]


def test_every_step_of_the_compliance_job_has_exactly_one_domain_step_and_one_benchmark_row():
    graph_steps = set(defs.resolve_job_def("compliance_job").graph.node_dict)

    assert {step.job_step for step in steps.DAILY_RUN} == graph_steps == set(MIRRORED)
    assert len(steps.DAILY_RUN) == len(graph_steps)


def test_the_job_executes_its_steps_in_the_order_of_the_daily_run(home):
    write_snapshot(home.snapshots_inbox / "s1")
    run_config = {"resources": {"retention": {"config": {"home": str(home.root), "as_of": AS_OF}}}}

    result = defs.resolve_job_def("compliance_job").execute_in_process(
        run_config=run_config, instance=dg.DagsterInstance.ephemeral())

    assert result.success
    assert job_steps(result) == [step.job_step for step in steps.DAILY_RUN]


def test_registering_a_second_step_for_a_job_step_is_refused():
    try:
        steps.step("crm_snapshots")(lambda ctx: None)
    except ValueError as exc:
        assert "crm_snapshots" in str(exc)
    else:
        raise AssertionError("a second step for crm_snapshots was registered")
    assert [s.job_step for s in steps.DAILY_RUN].count("crm_snapshots") == 1


def test_a_run_keeps_the_settings_and_rules_it_started_with_when_the_files_change_between_two_steps(home, monkeypatch):
    write_snapshot(home.snapshots_inbox / "s1")
    home.settings_file.write_text("restore_window_days: 45\n")
    seen: dict[str, object] = {}
    original_ingest, original_plan = steps.ingest, steps.plan_deletions

    def ingest_then_edit_the_files(ctx):
        result = original_ingest(ctx)
        home.settings_file.write_text("restore_window_days: 7\n")
        home.rules_file.write_text("rules:\n  - name: everyone-unsubscribed\n    status: published\n"
                                   "    owner: u-admin-1\n    trigger: {tags_any: [Unsubscribed]}\n"
                                   "    action: delete_contact\n")
        return result

    def plan_and_record(ctx, **options):
        seen["window"], seen["rules"] = ctx.settings.restore_window_days, [rule.name for rule in ctx.rules().rules]
        return original_plan(ctx, **options)

    monkeypatch.setattr(steps, "ingest", ingest_then_edit_the_files)
    monkeypatch.setattr(steps, "plan_deletions", plan_and_record)
    run_config = {"resources": {"retention": {"config": {"home": str(home.root), "as_of": AS_OF}}}}

    result = defs.resolve_job_def("compliance_job").execute_in_process(
        run_config=run_config, instance=dg.DagsterInstance.ephemeral())

    assert result.success
    assert seen == {"window": 45, "rules": []}
