"""`retention demo --format highlevel`: the demo CRM written as a HighLevel API export, ingested and run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from demo_crm.generator import staff_ids

RETENTION = Path(sys.executable).with_name("retention")
AS_OF = "2026-11-10T08:00:00Z"


def test_a_highlevel_demo_runs_its_requests_and_rule_on_the_api_ids(tmp_path):
    env = {key: value for key, value in os.environ.items()
           if key not in ("RETENTION_HOME", "DAGSTER_HOME", "RETENTION_DEBUG")}
    home = tmp_path / "home"

    result = subprocess.run([str(RETENTION), "demo", "--format", "highlevel", "--contacts", "1000", "--as-of", AS_OF,
                             "--json", "--home", str(home)], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=600)

    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    [snapshot] = (home / "inbox" / "snapshots").iterdir()
    assert (snapshot / "highlevel" / "contacts" / "page-00010.json").is_file()
    assert not (snapshot / "contacts.parquet").exists()
    admin = staff_ids(snapshot)["u-admin-1"]
    deletes = {action["source"]: action for action in summary["bulk_actions"] if action["kind"] == "delete"}
    assert deletes["rule remove-unsubscribed"]["requested_by"] == admin
    assert deletes["rule remove-unsubscribed"]["counts"]["deleted"] > 0
    [gdpr] = [action for source, action in deletes.items() if source.startswith("request gdpr-")]
    assert gdpr["status"] == "completed" and gdpr["counts"]["deleted"] >= 3 and gdpr["requested_by"] == admin
    [refused] = [action for source, action in deletes.items() if "by-non-admin" in source]
    assert refused["status"] == "rejected"
