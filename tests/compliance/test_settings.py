"""settings.yaml and rules.yaml: defaults, the files `init` writes, errors naming the file, key and allowed values."""

from __future__ import annotations

import pytest

from compliance.errors import InputError
from compliance.settings import Rules, Settings, load_rules, load_settings, memory_bytes

RULE = "{{name: {name}, status: published, owner: u-admin-1, trigger: {trigger}}}"


def rules_yaml(*rules: tuple[str, str]) -> str:
    return "rules:\n" + "".join(f"  - {RULE.format(name=name, trigger=trigger)}\n" for name, trigger in rules)


def test_missing_files_mean_the_defaults(tmp_path):
    settings = load_settings(tmp_path / "settings.yaml")

    assert settings == Settings()
    assert settings.restore_window_days == 60 and settings.backup_retention_days == 60
    assert settings.cascade.model_dump() == dict(conversations="delete", notes="delete", tasks="delete",
                                                 activities="delete")
    assert settings.active_enrollment == "block" and settings.backup_formats == ("csv", "parquet")
    assert load_rules(tmp_path / "rules.yaml") == Rules() and load_rules(tmp_path / "rules.yaml").rules == ()


def test_the_files_init_writes_load_as_the_defaults(home):
    assert home.settings_file.read_text().strip() and home.rules_file.read_text().strip()

    assert load_settings(home.settings_file) == Settings()
    assert load_rules(home.rules_file) == Rules()


def test_values_given_override_the_defaults(tmp_path):
    path = tmp_path / "settings.yaml"
    path.write_text("restore_window_days: 30\ncascade: {notes: retain}\nbackup_formats: [parquet]\n")

    settings = load_settings(path)

    # backup_retention_days follows the restore window unless given.
    assert settings.restore_window_days == 30 and settings.backup_retention_days == 30
    assert settings.cascade.notes == "retain" and settings.cascade.tasks == "delete"
    assert settings.backup_formats == ("parquet",)


@pytest.mark.parametrize(("text", "fragments"), [
    ("restore_window: 30\n", ["unknown key", "restore_window", "restore_window_days", "backup_retention_days",
                              "cascade", "active_enrollment", "backup_formats"]),
    ("cascade: {emails: delete}\n", ["unknown key", "cascade.emails", "conversations", "notes", "tasks",
                                     "activities"]),
])
def test_an_unknown_key_names_the_file_the_key_and_the_allowed_keys(tmp_path, text, fragments):
    path = tmp_path / "settings.yaml"
    path.write_text(text)

    with pytest.raises(InputError) as raised:
        load_settings(path)

    assert str(path) in str(raised.value)
    for fragment in fragments:
        assert fragment in str(raised.value)


@pytest.mark.parametrize(("text", "key", "allowed"), [
    ("active_enrollment: maybe\n", "active_enrollment", ["block", "remove"]),
    ("cascade: {notes: keep}\n", "cascade.notes", ["delete", "retain"]),
    ("backup_formats: [csv, xml]\n", "backup_formats", ["csv", "parquet"]),
])
def test_a_bad_value_names_the_allowed_values(tmp_path, text, key, allowed):
    path = tmp_path / "settings.yaml"
    path.write_text(text)

    with pytest.raises(InputError) as raised:
        load_settings(path)

    message = str(raised.value)
    assert str(path) in message and key in message
    for value in allowed:
        assert value in message


@pytest.mark.parametrize("key", ["restore_window_days", "backup_retention_days"])
def test_a_negative_window_is_refused(tmp_path, key):
    path = tmp_path / "settings.yaml"
    path.write_text(f"{key}: -1\n")

    with pytest.raises(InputError, match=key):
        load_settings(path)


def test_invalid_yaml_names_the_line(tmp_path):
    path = tmp_path / "settings.yaml"
    path.write_text("restore_window_days: 60\ncascade:\n  notes: delete\n   tasks: delete\n")

    with pytest.raises(InputError) as raised:
        load_settings(path)

    assert str(path) in str(raised.value) and "line 4" in str(raised.value)


def test_settings_must_be_a_mapping(tmp_path):
    path = tmp_path / "settings.yaml"
    path.write_text("- restore_window_days\n")

    with pytest.raises(InputError, match="mapping"):
        load_settings(path)


def test_no_backup_format_is_refused(tmp_path):
    path = tmp_path / "settings.yaml"
    path.write_text("backup_formats: []\n")

    with pytest.raises(InputError, match="backup_formats"):
        load_settings(path)


def test_rules_load(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(rules_yaml(("remove-unsubscribed", "{tags_any: [Unsubscribed]}"),
                               ("old-dnd", "{inactive_days: 365, dnd: true}")))

    rules = load_rules(path).rules

    assert [rule.name for rule in rules] == ["remove-unsubscribed", "old-dnd"]
    assert rules[0].status == "published" and rules[0].owner == "u-admin-1" and rules[0].action == "delete_contact"


def test_a_rule_with_an_unknown_trigger_lists_the_valid_ones(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(rules_yaml(("r", "{tag: [Unsubscribed]}")))

    with pytest.raises(InputError) as raised:
        load_rules(path)

    message = str(raised.value)
    assert str(path) in message and "tag" in message
    for valid in ("tags_any", "inactive_days", "dnd"):
        assert valid in message


@pytest.mark.parametrize("trigger", ["{}", "{tags_any: []}"])
def test_a_rule_with_an_empty_trigger_is_refused(tmp_path, trigger):
    path = tmp_path / "rules.yaml"
    path.write_text(rules_yaml(("match-everyone", trigger)))

    with pytest.raises(InputError, match="trigger"):
        load_rules(path)


def test_duplicate_rule_names_are_refused(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(rules_yaml(("same", "{dnd: true}"), ("same", "{inactive_days: 30}")))

    with pytest.raises(InputError) as raised:
        load_rules(path)

    assert "unique" in str(raised.value) and "same" in str(raised.value)


@pytest.mark.parametrize("value", ["2GB", "1.5GB", "512 MiB", "100B", "3 TiB", "750KB"])
def test_a_memory_limit_of_a_number_and_a_unit_is_accepted(tmp_path, value):
    (tmp_path / "settings.yaml").write_text(f"memory_limit: {value}\n")

    assert load_settings(tmp_path / "settings.yaml").memory_limit == value


@pytest.mark.parametrize("value", ["2GB'; COPY (SELECT 42) TO 'x.csv'; SET threads='1", "2 gigs", "GB", "-1GB",
                                   "2GB\n", "80%"])
def test_a_memory_limit_that_is_not_a_number_and_a_unit_is_refused(tmp_path, value):
    (tmp_path / "settings.yaml").write_text(f"memory_limit: {value!r}\n".replace("\\n", "\\n"))

    with pytest.raises(InputError, match="memory_limit") as raised:
        load_settings(tmp_path / "settings.yaml")

    assert "\n" not in str(raised.value)


def test_a_memory_limit_given_to_the_store_directly_cannot_inject_sql(home, tmp_path):
    from compliance.store.connection import Store

    pwned = tmp_path / "pwned.csv"
    crafted = f"2GB'; COPY (SELECT 42) TO '{pwned}'; SET threads='1"

    with pytest.raises(InputError, match="memory_limit"):
        Store(home, memory_limit=crafted).connect().close()

    assert not pwned.exists()


@pytest.mark.parametrize(("value", "accepted"), [(0.0, True), (0.5, True), (1.0, True), (-0.1, False), (1.1, False)])
def test_the_contact_drop_limit_is_a_fraction(tmp_path, value, accepted):
    (tmp_path / "settings.yaml").write_text(f"max_contact_drop: {value}\n")

    if accepted:
        assert load_settings(tmp_path / "settings.yaml").max_contact_drop == value
    else:
        with pytest.raises(InputError, match="max_contact_drop"):
            load_settings(tmp_path / "settings.yaml")


def test_by_default_the_process_has_a_1gb_budget_and_duckdb_no_fixed_limit(tmp_path):
    settings = load_settings(tmp_path / "settings.yaml")

    assert (settings.memory_budget, settings.memory_limit) == ("2.5GB", None)


def test_a_settings_file_with_the_older_explicit_memory_limit_keeps_it(tmp_path):
    (tmp_path / "settings.yaml").write_text("memory_limit: 2GB\n")

    assert load_settings(tmp_path / "settings.yaml").memory_limit == "2GB"


@pytest.mark.parametrize("value", ["1GB'; SET threads='1", "1 gig", "80%"])
def test_a_memory_budget_that_is_not_a_number_and_a_unit_is_refused(tmp_path, value):
    (tmp_path / "settings.yaml").write_text(f"memory_budget: {value!r}\n")

    with pytest.raises(InputError, match="memory_budget"):
        load_settings(tmp_path / "settings.yaml")


@pytest.mark.parametrize("value, expected", [("1GB", 10 ** 9), ("1GiB", 2 ** 30), ("1.5 MB", 1_500_000),
                                             ("512MiB", 512 * 2 ** 20), ("100B", 100), ("2TB", 2 * 10 ** 12)])
def test_memory_sizes_count_bytes_as_duckdb_does(value, expected):
    assert memory_bytes(value) == expected
