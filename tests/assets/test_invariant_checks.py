"""The retention_invariants asset's checks come from the invariant registry: a tenth invariant is a tenth check."""

from __future__ import annotations

import dagster as dg

from assets.proof import build_retention_invariants, retention_invariants
from compliance.invariants import DESCRIPTIONS, INVARIANTS, REGISTRY
from resources import RetentionResource
from support.crm import AS_OF


def check_specs(asset: dg.AssetsDefinition) -> dict[str, str | None]:
    return {spec.name: spec.description for spec in asset.check_specs}


def test_the_asset_has_one_check_per_registered_invariant_in_registry_order():
    assert check_specs(retention_invariants) == DESCRIPTIONS
    assert list(check_specs(retention_invariants)) == list(INVARIANTS)
    assert {spec.asset_key for spec in retention_invariants.check_specs} == {dg.AssetKey("retention_invariants")}


def test_a_tenth_registered_invariant_is_a_tenth_check_that_runs_and_reports(crm, tenth):
    asset = build_retention_invariants()
    assert list(check_specs(asset)) == [*INVARIANTS, tenth]
    assert check_specs(asset)[tenth] == "No contact has asked not to be disturbed."

    result = dg.materialize([asset], resources={"retention": RetentionResource(home=str(crm.root), as_of=AS_OF)},
                            instance=dg.DagsterInstance.ephemeral())

    checked = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert list(checked) == [*INVARIANTS, tenth]
    assert [name for name, e in checked.items() if not e.passed] == [tenth]
    assert checked[tenth].description == "1 contact in do-not-disturb: 1 in contacts (c-3)"
    assert checked[tenth].metadata["sample_ids"].value == ["c-3"]
    assert checked[tenth].metadata["violations"].value == 1


def test_an_asset_built_after_unregistering_is_back_to_the_nine(tenth):
    assert len(build_retention_invariants().check_specs) == len(INVARIANTS) + 1
    REGISTRY.pop(tenth)
    assert list(check_specs(build_retention_invariants())) == list(INVARIANTS)
