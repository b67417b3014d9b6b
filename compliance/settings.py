"""settings.yaml and rules.yaml: loaded, validated, and explained when wrong."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from compliance.errors import InputError
from compliance.identifiers import DEFAULT_REGION, valid_region
from compliance.rules import TRIGGERS, build_triggers

CascadePolicy = Literal["delete", "retain"]
# DuckDB's own size syntax, and nothing else: the value reaches the engine (as a parameter, never pasted).
MEMORY_LIMIT = re.compile(r"\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)", re.ASCII)
# Not 1GB: DuckDB would get its 640MiB floor, and at 10M contacts the apply of a 1% deletion (101,000 contacts, one
# transaction) ran out of memory there (benchmarks/RESULTS.md). At 2.5GB DuckDB gets 2,000MiB, what the old default
# memory_limit: 2GB gave it.
DEFAULT_MEMORY_BUDGET = "2.5GB"
_UNIT_BYTES = {"B": 1, "KB": 1000, "MB": 1000 ** 2, "GB": 1000 ** 3, "TB": 1000 ** 4,
               "KiB": 1024, "MiB": 1024 ** 2, "GiB": 1024 ** 3, "TiB": 1024 ** 4}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Cascade(_Strict):
    conversations: CascadePolicy = "delete"
    notes: CascadePolicy = "delete"
    tasks: CascadePolicy = "delete"
    activities: CascadePolicy = "delete"


class Deadlines(_Strict):
    gdpr_months: int = Field(1, ge=0)
    gdpr_extension_months: int = Field(2, ge=0)
    ccpa_days: int = Field(45, ge=0)
    ccpa_extension_days: int = Field(45, ge=0)
    internal_days: int | None = Field(None, ge=0)


class Crm(_Strict):
    """The CRM connector (`crm:`): off unless `kind` is set; the token comes from the `token_env` variable only."""

    kind: Literal["highlevel"] | None = None
    base_url: str = "https://services.leadconnectorhq.com"
    token_env: str = Field("HIGHLEVEL_TOKEN", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    location_ids: tuple[Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+$")], ...] = ()
    push: Literal["off", "dry_run", "on"] = "off"
    requests_per_10s: int = Field(100, ge=1)
    max_retries: int = Field(5, ge=0)
    page_size: int = Field(100, ge=1, le=100)

    @field_validator("push", mode="before")
    @classmethod
    def _yaml_booleans(cls, value: Any) -> Any:
        # YAML reads a bare `off`/`on` as a boolean.
        return {False: "off", True: "on"}.get(value, value) if isinstance(value, bool) else value


# Shards beyond this would each hold too little to pay for a process of their own; raise it with care.
MAX_SHARDS = 64


class Settings(_Strict):
    restore_window_days: int = Field(60, ge=0)
    # Defaults to the restore window: a backup must outlive every contact it can still restore.
    backup_retention_days: int = Field(60, ge=0)
    cascade: Cascade = Cascade()
    active_enrollment: Literal["block", "remove"] = "block"
    backup_formats: tuple[Literal["csv", "parquet"], ...] = ("csv", "parquet")
    # The RAM the whole process may use: DuckDB's limit is derived from it (the budget minus a fixed allowance for
    # Python, Dagster, Great Expectations and pyarrow: compliance.store.connection.derived_memory_limit), unless
    # memory_limit is set.
    memory_budget: str = DEFAULT_MEMORY_BUDGET
    # DuckDB's own buffer limit, set as is; unset: derived from memory_budget.
    memory_limit: str | None = None
    # A snapshot with this fraction fewer contacts than the last one is refused unless `run --accept-shrink`.
    max_contact_drop: float = Field(0.5, ge=0, le=1)
    deadlines: Deadlines = Deadlines()
    # Read when the Dagster definitions load: a change takes effect when `retention ui` restarts.
    request_sensor_interval_seconds: int = Field(30, ge=1)
    # The country of phone numbers written without one (such as `(555) 010-9999`), in snapshots and requests.
    default_region: str = DEFAULT_REGION
    crm: Crm = Crm()
    # Seconds a command waits, with a countdown, for another run that holds the store before it gives up (exit 1).
    store_wait_seconds: float = Field(300, ge=0)
    # OS user -> the staff ids (user_id or email) they may act as with --as-user; unset: anyone may act as anyone.
    operators: dict[str, tuple[str, ...]] | None = None
    # Location shards: each a DuckDB store of its own, run in parallel by Dagster's run queue. Fixed once data exists.
    shards: int = Field(1, ge=1, le=MAX_SHARDS)
    # DuckDB's threads in each run's process; unset: every core. Shards run side by side on one machine share it.
    threads: int | None = Field(None, ge=1)
    # Write Great Expectations' Data Docs site (reports/data_docs) each run; the verdicts are in the report either way.
    data_docs: bool = True

    @model_validator(mode="before")
    @classmethod
    def _retention_follows_window(cls, data: Any) -> Any:
        if isinstance(data, dict) and "backup_retention_days" not in data and "restore_window_days" in data:
            return {**data, "backup_retention_days": data["restore_window_days"]}
        return data

    @field_validator("memory_limit", "memory_budget")
    @classmethod
    def _size(cls, value: str | None) -> str | None:
        if value is not None and not valid_memory_limit(value):
            raise ValueError("expected a number and a unit, such as 2GB, 1.5GB or 512MiB "
                             "(units: B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)")
        return value

    @field_validator("default_region")
    @classmethod
    def _known_region(cls, region: str) -> str:
        if not valid_region(region.strip().upper()):
            raise ValueError(f"{region!r} is not a region code phonenumbers knows (such as US, GB, DE)")
        return region.strip().upper()

    @field_validator("backup_formats")
    @classmethod
    def _at_least_one_format(cls, formats: tuple[str, ...]) -> tuple[str, ...]:
        if not formats:
            raise ValueError("name at least one of csv, parquet: nothing may be deleted without a backup")
        return tuple(dict.fromkeys(formats))


class Rule(_Strict):
    name: str = Field(min_length=1)
    status: Literal["published", "draft"]
    owner: str = Field(min_length=1)
    trigger: dict[str, Any]
    action: Literal["delete_contact"] = "delete_contact"

    @field_validator("trigger")
    @classmethod
    def _known_triggers(cls, trigger: dict[str, Any]) -> dict[str, Any]:
        if not trigger:
            raise ValueError(f"a trigger needs at least one of {', '.join(sorted(TRIGGERS))}")
        build_triggers(trigger)
        return trigger


class Rules(_Strict):
    rules: tuple[Rule, ...] = ()

    @field_validator("rules")
    @classmethod
    def _unique_names(cls, rules: tuple[Rule, ...]) -> tuple[Rule, ...]:
        names = [rule.name for rule in rules]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"rule names must be unique; repeated: {', '.join(repeated)}")
        return rules


def valid_memory_limit(value: str) -> bool:
    """Whether `value` is a DuckDB memory size: a number and a unit (2GB, 1.5GB, 512 MiB)."""
    return isinstance(value, str) and MEMORY_LIMIT.fullmatch(value) is not None


def memory_bytes(value: str) -> int:
    """The bytes of a DuckDB memory size, as DuckDB reads it (KB, MB, GB, TB: powers of 1000; KiB...TiB: of 1024).

    Args:
        value: a size that valid_memory_limit accepts.

    Returns:
        The size in bytes.
    """
    match = MEMORY_LIMIT.fullmatch(value)
    if match is None:
        raise ValueError(f"{value!r} is not a number and a unit such as 1GB")
    return int(float(value[:match.start(2)]) * _UNIT_BYTES[match.group(2)])


def load_settings(path: Path) -> Settings:
    """The validated settings.yaml (a missing file: all defaults); InputError names the file, key and allowed values."""
    return _load(path, Settings)


def load_rules(path: Path) -> Rules:
    """The validated rules.yaml (a missing file: no rules); InputError names the file, key and allowed values."""
    return _load(path, Rules)


def _load(path: Path, model: type[_Strict]) -> Any:
    if not path.exists():
        return model()
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise InputError(f"{path}:{where} not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a mapping of keys at the top, found {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InputError(f"{path}: {explain(exc, model)}") from None


def explain(exc: ValidationError, model: type[BaseModel]) -> str:
    """The first validation error as 'key: what is wrong (allowed: ...)'."""
    error = exc.errors()[0]
    location = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        allowed = _allowed_keys(model, error["loc"][:-1])
        return f"unknown key '{location}' (allowed: {', '.join(allowed)})"
    if error["type"] == "literal_error":
        return f"{location}: {error['input']!r} is not allowed (allowed: {error['ctx']['expected']})"
    if error["type"] == "value_error":
        return f"{location}: {error['ctx']['error']}"
    if error["type"] == "missing":
        return f"{location}: required key is missing"
    return f"{location}: {error['msg']} (got {error['input']!r})"


def _allowed_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        field = current.model_fields.get(part)
        annotation = field.annotation if field else None
        args = getattr(annotation, "__args__", ())
        nested = [arg for arg in (annotation, *args) if isinstance(arg, type) and issubclass(arg, BaseModel)]
        if not nested:
            return []
        current = nested[0]
    return list(current.model_fields)
