"""The installed `retention` script as a process: exit codes 0, 1 and 2, one JSON document on stdout, one line on
stderr, and the product's default settings (the Data Docs site written)."""

from __future__ import annotations

import json
import shutil

import pytest

from compliance.home import Home
from compliance.steps import DATA_DOCS_FOLDER
from support.cli import run_retention_process as retention
from support.crm import AS_OF, write_request

pytestmark = pytest.mark.e2e


@pytest.fixture
def ingested(tmp_path, ingested_template: Home) -> Home:
    """A home of the hand-made CRM, s1 already ingested, made in this process (only the command runs as one)."""
    home = Home(tmp_path / "home")
    home.init()
    shutil.copytree(ingested_template.snapshots_inbox / "s1", home.snapshots_inbox / "s1")
    shutil.copy2(ingested_template.store_file, home.store_file)
    return home


def test_a_run_exits_0_prints_exactly_one_json_document_and_writes_the_data_docs_site(ingested):
    write_request(ingested, "r-ok", regulation="ccpa", subjects=[{"email": " BOB@example.com "}])

    done = retention("run", "--as-of", AS_OF, "--json", home=ingested)

    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["success"] is True and document["refused_or_failed"] == []
    assert (ingested.reports_dir / DATA_DOCS_FOLDER / "index.html").is_file(), "the product's default: data_docs true"


def test_a_refused_delete_exits_1_with_its_rejected_bulk_action_as_json(ingested):
    done = retention("delete", "--contact", "c-1", "--as-user", "u-user-1", "--confirm", "DELETE", "--as-of", AS_OF,
                     "--json", home=ingested)

    assert done.returncode == 1, done.stderr
    [action] = json.loads(done.stdout)["bulk_actions"]
    assert action["status"] == "rejected" and "u-user-1 is not an admin" in action["reason"]


def test_bad_input_exits_2_with_one_line_on_stderr_and_nothing_on_stdout(ingested):
    ingested.settings_file.write_text("restore_windw_days: 30\n")

    done = retention("run", "--as-of", AS_OF, "--json", home=ingested)

    assert done.returncode == 2
    assert done.stdout == ""
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("retention: error:") and "restore_windw_days" in line


def test_a_usage_error_exits_2_naming_the_option(tmp_path):
    done = retention("run", "--no-such-option", home=tmp_path / "home")

    assert done.returncode == 2
    assert done.stdout == "" and "--no-such-option" in done.stderr
