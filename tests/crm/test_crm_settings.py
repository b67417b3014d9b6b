"""The `crm:` settings: off by default, YAML's bare off/on understood, bad values named."""

import pytest

from compliance.errors import InputError
from compliance.settings import load_settings


def test_without_a_crm_section_the_connector_is_off(tmp_path):
    crm = load_settings(tmp_path / "missing.yaml").crm

    assert (crm.kind, crm.push, crm.location_ids, crm.token_env) == (None, "off", (), "HIGHLEVEL_TOKEN")
    assert (crm.requests_per_10s, crm.max_retries) == (100, 5)


@pytest.mark.parametrize(("written", "read"), [("off", "off"), ("on", "on"), ("dry_run", "dry_run"),
                                               ('"off"', "off")])
def test_push_accepts_bare_yaml_off_and_on(tmp_path, written, read):
    path = tmp_path / "settings.yaml"
    path.write_text(f"crm: {{kind: highlevel, push: {written}}}\n")

    assert load_settings(path).crm.push == read


@pytest.mark.parametrize(("written", "named"), [
    ("crm: {kind: salesforce}", "crm.kind"),
    ("crm: {requests_per_10s: 0}", "crm.requests_per_10s"),
    ("crm: {location_ids: ['../x']}", "crm.location_ids.0"),
    ("crm: {token_env: 'not a name'}", "crm.token_env"),
    ("crm: {token: abc}", "unknown key 'crm.token'"),
])
def test_a_bad_crm_setting_is_named(tmp_path, written, named):
    path = tmp_path / "settings.yaml"
    path.write_text(written + "\n")

    with pytest.raises(InputError, match=named.replace(".", r"\.")):
        load_settings(path)
