"""``sleuth.yaml`` as pydantic models (Contract 2).

Config is data: unknown keys are errors, every value is validated here once, and
:func:`load_config` turns pydantic's errors into one line that names the key, what is
allowed and what was given.
"""
from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (BaseModel, ConfigDict, Field, ValidationError, field_serializer, field_validator,
                      model_validator)

from .errors import ConfigError

AggType = Literal["count", "sum", "distinct"]
MetricType = Literal["count", "sum", "distinct", "ratio"]

#: Standard column names of Contract 1, mapped from a user's names by ``columns:``.
STANDARD_COLUMNS = ("timestamp", "event", "session_id", "user_id", "revenue", "property")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Columns(_Model):
    """Where the standard fields live in the user's data (``columns: {timestamp: ts}``)."""

    timestamp: str | None = None
    event: str | None = None
    session_id: str | None = None
    user_id: str | None = None
    revenue: str | None = None
    property: str | None = None


class Aggregate(_Model):
    """One aggregate over events: the numerator or denominator of a ratio."""

    type: AggType
    column: str | None = None
    event: str | list[str] | None = None

    @model_validator(mode="after")
    def _column_needed(self) -> "Aggregate":
        if self.type in ("sum", "distinct") and not self.column:
            raise ValueError(f"a '{self.type}' aggregate needs 'column' (the column to {self.type})")
        return self

    @property
    def events(self) -> list[str] | None:
        if self.event is None:
            return None
        return [self.event] if isinstance(self.event, str) else list(self.event)


class Metric(_Model):
    """A metric: ``count | sum | distinct`` over events, or a ``ratio`` of two aggregates."""

    name: str
    type: MetricType
    column: str | None = None
    event: str | list[str] | None = None
    numerator: Aggregate | None = None
    denominator: Aggregate | None = None
    #: ratio only: report ``1 - numerator/denominator`` (e.g. cart abandonment from carts that converted)
    invert: bool = False
    #: which changes matter: ``both``, ``down`` (drops only) or ``up`` (rises only)
    direction: Literal["both", "up", "down"] = "both"
    #: this metric's sensitivity: the band half-width in robust standard deviations (default:
    #: the top-level ``threshold``); higher is quieter, lower alerts on smaller changes
    threshold: float | None = Field(default=None, gt=0)
    #: smallest relative change worth an alert (0.2 = 20 %), on top of the statistical test
    min_change: float = Field(default=0.0, ge=0)
    #: smallest absolute change worth an alert, in the metric's unit over the incident
    min_abs_change: float = Field(default=0.0, ge=0)
    description: str | None = None

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.\-]*", v):
            raise ValueError("use letters, digits, '_', '.', '-' and start with a letter")
        return v

    @model_validator(mode="after")
    def _shape(self) -> "Metric":
        if self.type == "ratio":
            if self.numerator is None or self.denominator is None:
                raise ValueError("a 'ratio' metric needs both 'numerator' and 'denominator'")
        else:
            if self.numerator is not None or self.denominator is not None:
                raise ValueError("'numerator'/'denominator' belong to 'ratio' metrics only")
            if self.type in ("sum", "distinct") and not self.column:
                raise ValueError(f"a '{self.type}' metric needs 'column' (the column to {self.type})")
            if self.invert:
                raise ValueError("'invert' belongs to 'ratio' metrics only")
        return self

    @property
    def is_ratio(self) -> bool:
        return self.type == "ratio"

    def parts(self) -> tuple[Aggregate, Aggregate | None]:
        """The aggregates the cube computes: ``(value, None)`` or ``(numerator, denominator)``."""
        if self.is_ratio:
            assert self.numerator is not None and self.denominator is not None
            return self.numerator, self.denominator
        return Aggregate(type=self.type, column=self.column, event=self.event), None  # type: ignore[arg-type]

    @property
    def additive(self) -> bool:
        """Whether segment values add up to the total (counts and sums; not distincts or ratios)."""
        return self.type in ("count", "sum")


_HHMM = r"([01]\d|2[0-3]):[0-5]\d"


class NotifyRoute(_Model):
    """One notification channel (Contract 7): an apprise URL, what it wants, how hard to try."""

    url: str
    metrics: list[str] | None = None
    min_severity: Literal["low", "medium", "high"] = "low"
    #: extra attempts within one run, waiting ``backoff`` seconds, then twice that, ...
    retries: int = Field(default=3, ge=0)
    backoff: float = Field(default=2.0, ge=0)
    #: attempts over all runs after which a message is given up on (kept as a dead letter)
    dead_letter_after: int = Field(default=12, gt=0)
    #: minutes after a message about a series (metric and segment) before the next one about it
    cooldown_minutes: int = Field(default=0, ge=0)
    #: ``"22:00-07:00"`` in the config's time zone: only high-severity messages go out then
    quiet_hours: str | None = None
    #: ``"09:00"``: messages below high severity wait and go out as one digest a day, in the first
    #: run at or after this time (config time zone)
    digest_at: str | None = None
    #: seconds one attempt may take in all (connect, send, answer), however slowly the channel drips
    timeout: float = Field(default=20.0, gt=0, le=3600)
    #: seconds one run spends on this channel in all (attempts and backoff); what is left waits
    #: for the next run
    deadline: float = Field(default=120.0, gt=0, le=86400)

    @field_validator("url")
    @classmethod
    def _url_ok(cls, v: str) -> str:
        from urllib.parse import urlsplit

        from .redact import redact_channel

        scheme = v.partition("://")[0] if "://" in v else ""
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", scheme):
            raise ValueError(f"{redact_channel(v)} is not a URL; use an apprise URL such as "
                             "slack://TokenA/TokenB/TokenC, mailtos://user:pass@host or json://host:port/path")
        try:
            if urlsplit(v).port == 0:
                raise ValueError
        except ValueError:
            port = re.search(r"^(?:[^/@]*@)?[^/:]*:(\d+)", v.partition("://")[2])
            raise ValueError(f"{redact_channel(v)}: port {port.group(1) if port else '?'} is out of range; "
                             "use 1-65535") from None
        return v

    @field_validator("quiet_hours")
    @classmethod
    def _quiet_ok(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(f"{_HHMM}-{_HHMM}", v):
            raise ValueError("use HH:MM-HH:MM in the config's time zone, such as 22:00-07:00")
        return v

    @field_validator("digest_at")
    @classmethod
    def _digest_ok(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(_HHMM, v):
            raise ValueError("use HH:MM in the config's time zone, such as 09:00")
        return v

    def last_digest(self, local: dt.datetime) -> dt.datetime:
        """The most recent digest time at or before ``local`` (an aware time in the config's zone)."""
        t = dt.time.fromisoformat(self.digest_at or "00:00")
        slot = local.replace(hour=t.hour, minute=t.minute, second=0, microsecond=0)
        return slot if slot <= local else slot - dt.timedelta(days=1)

    def quiet_at(self, local: dt.time) -> bool:
        """Whether ``local`` (a wall-clock time in the config's zone) falls in the quiet hours."""
        if self.quiet_hours is None:
            return False
        a, b = (dt.time.fromisoformat(x) for x in self.quiet_hours.split("-"))
        return a <= local < b if a <= b else (local >= a or local < b)


class CalendarEvent(_Model):
    """One of the user's own recurring events (``calendar:``): explicit first days or a rule,
    ``days`` long, for some properties only. Its effect on each series is learned from its
    earlier occurrences, as a holiday's is."""

    name: str
    #: the first day of each occurrence, e.g. ``[2024-07-09, 2025-07-08]``
    dates: list[dt.date] | None = None
    #: a rule repeated every year: ``second Tuesday of July``, ``last Friday of November``,
    #: ``ISO week 27`` (the whole week), ``July 4``, ``Easter+1``
    rule: str | None = None
    #: how many days each occurrence lasts (default 1; 7 for an ISO week)
    days: int | None = Field(default=None, ge=1, le=31)
    #: the properties it applies to (default: all)
    properties: list[str] | None = None

    @field_validator("rule")
    @classmethod
    def _rule_ok(cls, v: str | None) -> str | None:
        if v is not None:
            from .calendar import parse_rule

            parse_rule(v)  # ValueError names the accepted forms
        return v

    @model_validator(mode="after")
    def _one_source(self) -> "CalendarEvent":
        if (self.dates is None) == (self.rule is None):
            raise ValueError(f"calendar event {self.name!r} needs either 'dates' (a list of first days) or 'rule' "
                             "(such as 'second Tuesday of July'), not both")
        return self

    def to_event(self):
        from .calendar import Event

        return Event(self.name, tuple(self.dates or ()), self.rule, self.days,
                     None if self.properties is None else tuple(self.properties))


class SessionFields(_Model):
    """Where a nested session export keeps each field: Google Analytics 360 ``ga_sessions`` names by
    default, so a GA360 export needs no mapping. Dotted paths; list fields (``hits``, ``forms``,
    ``clicks``, ``events``) are the lists themselves, their fields start with the list's path.
    Times inside a session (``hit_time``, ``click_time``) are milliseconds since it started, or
    timestamps; ``form_fill`` is milliseconds."""

    session_id: str = "visitId"
    user_id: str | None = "fullVisitorId"
    start: str = "visitStartTime"
    device: str | None = "device.deviceCategory"
    browser: str | None = "device.browser"
    os: str | None = "device.operatingSystem"
    country: str | None = "geoNetwork.country"
    channel: str | None = "channelGrouping"
    hits: str = "hits"
    hit_time: str = "hits.time"
    hit_type: str | None = "hits.type"
    page: str | None = "hits.page.pagePath"
    latency: str | None = "hits.latencyTracking.pageLoadTime"
    ajax_calls: str | None = "hits.ajaxCalls"
    bytes: str | None = "hits.bytes"
    event: str | None = "hits.eventInfo.eventAction"
    revenue: str | None = "hits.transaction.transactionRevenue"
    #: GA360 keeps money in millionths of the currency
    revenue_scale: float = Field(default=1e-6, gt=0)
    #: a list of events inside each hit (``pages.events``); GA360 has EVENT hits instead
    events: str | None = None
    forms: str | None = "hits.forms"
    form_fill: str | None = "hits.forms.fillTime"
    clicks: str | None = "hits.clicks"
    click_time: str | None = "hits.clicks.time"


class SessionsConfig(_Model):
    """The sessions stage (``sleuth sessions``; with ``detect``/``run`` when enabled)."""

    #: ``None``: on for nested session exports, off for flat event streams
    enabled: bool | None = None
    fields: SessionFields = Field(default_factory=SessionFields)
    #: clusters, the reduction and the outlier scale are learned on the first days of the data
    train_days: int = Field(default=14, gt=0)
    #: behaviour clusters; ``None``: chosen from the data (silhouette)
    clusters: int | None = Field(default=None, ge=2, le=12)
    #: session anomaly score in the reduced space: an isolation forest (the default: it ranks the
    #: bots of ``sleuth bench sessions`` better), or a robust (MCD) Mahalanobis distance
    outlier_method: Literal["robust", "isolation_forest"] = "isolation_forest"
    #: share of the training sessions scoring above the ``outlier`` label's threshold
    outlier_rate: float = Field(default=0.002, gt=0, lt=0.5)
    #: a person does not fill a form faster than this
    bot_form_seconds: float = Field(default=1.5, ge=0)
    #: click gaps (at least 8) whose interquartile range is less than this share of their median are a machine's
    bot_click_spread: float = Field(default=0.1, ge=0)
    #: a person does not read this many pages a minute (over at least 5 pages)
    bot_pages_per_minute: float = Field(default=20.0, gt=0)


class SparkSettings(_Model):
    """Where Spark sources run (``spark:`` in sleuth.yaml): see :mod:`sleuth.ingest.spark`."""

    #: ``local[*]`` (this machine, the default), ``spark://host:7077``, ``yarn``, ``k8s://…``
    master: str = "local[*]"
    #: a Spark Connect server instead of a master: ``sc://host:15002``
    remote: str | None = None
    #: the catalog implementation: ``hive`` (a metastore, tables kept in ``warehouse``) or ``in-memory``
    catalog: Literal["hive", "in-memory"] | None = None
    #: where the catalog's tables live (``spark.sql.warehouse.dir``)
    warehouse: str | None = None
    app_name: str = "sleuth"
    #: any other Spark setting, e.g. ``spark.driver.memory: 8g``
    conf: dict[str, str | int | float | bool] = Field(default_factory=dict)

    @field_validator("remote")
    @classmethod
    def _remote_ok(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith("sc://"):
            raise ValueError("a Spark Connect address starts with sc:// (sc://host:15002)")
        return v

    @field_serializer("conf", "remote")
    def _no_secrets(self, v: Any) -> Any:
        """Dumped (and so stored with each run) with secret values hidden: an S3 key, a token."""
        from .redact import MASK, SECRET_KEY, redact_url

        if isinstance(v, dict):
            return {k: MASK if SECRET_KEY.search(k) else x for k, x in v.items()}
        return redact_url(v) if v else v


class Config(_Model):
    granularity: Literal["1h", "1d"] = "1h"
    timezone: str = "UTC"
    holidays: list[str] = Field(default_factory=list)
    #: ``None`` means: pick low-cardinality text columns automatically
    dimensions: list[str] | None = None
    #: ``None`` means: derive sessions, users, frequent events and e-commerce KPIs
    metrics: list[Metric] | None = None
    columns: Columns = Field(default_factory=Columns)
    #: JSON Lines: list-valued fields to explode into one row per element (e.g. ``[hits]``)
    explode: list[str] = Field(default_factory=list)
    #: inactivity gap that starts a new session when ``session_id`` is absent
    session_timeout_minutes: int = Field(default=30, gt=0)
    #: per dimension, series are kept for the most frequent values only
    max_segments: int = Field(default=25, gt=0)
    #: detection sensitivity: band half-width in robust standard deviations
    threshold: float = Field(default=4.0, gt=0)
    #: the retail days the ``holidays`` package lacks (Black Friday, Cyber Monday, Christmas Eve,
    #: Boxing Day, Easter, Mother's Day, Singles' Day, ...): their effect is learned like a holiday's
    retail_days: bool = True
    #: the user's own recurring events (a sale, a launch week), each learned like a holiday
    calendar: list[CalendarEvent] = Field(default_factory=list)
    #: groups of properties that form a market (each incident says how its market moved); default:
    #: all the properties of the deployment form one
    peers: list[list[str]] | None = None
    notify: list[NotifyRoute] = Field(default_factory=list)
    store: str | None = None
    #: session behaviour, bots and pages (see :class:`SessionsConfig`)
    sessions: SessionsConfig = Field(default_factory=SessionsConfig)
    #: remove sessions flagged as bots from every other metric (the sessions stage then runs)
    exclude_bots: bool = False
    #: where people open the dashboard (``sleuth dashboard``), e.g. ``http://127.0.0.1:8501``;
    #: alert messages then link to each incident's page
    dashboard_url: str | None = None
    #: events separated from the bulk of the data by more than this many days without events
    #: (a stray timestamp in 1970 or 2036) are counted, named in one line and left out
    max_gap_days: int = Field(default=60, gt=0)
    #: where ``spark:`` sources run: master, Spark Connect, catalog, warehouse, settings
    spark: SparkSettings = Field(default_factory=SparkSettings)

    @field_validator("timezone")
    @classmethod
    def _tz_ok(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone; use an IANA name such as 'UTC' or 'Europe/Berlin'") from None
        return v

    @field_validator("holidays")
    @classmethod
    def _holidays_ok(cls, v: list[str]) -> list[str]:
        import holidays as hol

        supported = hol.list_supported_countries()
        bad = [c for c in v if c not in supported]
        if bad:
            raise ValueError(f"unknown country code {bad[0]!r}; use ISO codes of the holidays package such as US, DE, GB")
        return v

    @model_validator(mode="after")
    def _unique_names(self) -> "Config":
        if self.metrics:
            seen: set[str] = set()
            for m in self.metrics:
                if m.name in seen:
                    raise ValueError(f"metric name {m.name!r} is used twice")
                seen.add(m.name)
        return self

    @model_validator(mode="after")
    def _peers_ok(self) -> "Config":
        seen: set[str] = set()
        for group in self.peers or []:
            if len(group) < 2:
                raise ValueError(f"peers: each group needs at least two properties; got {group}")
            twice = seen & set(group)
            if twice:
                raise ValueError(f"peers: property {sorted(twice)[0]!r} is in two groups")
            seen |= set(group)
        return self

    def calendar_events(self) -> list:
        """The user's events as :class:`sleuth.calendar.Event` objects."""
        return [e.to_event() for e in self.calendar]

    @property
    def step(self) -> dt.timedelta:
        return dt.timedelta(hours=1) if self.granularity == "1h" else dt.timedelta(days=1)

    @property
    def season(self) -> int:
        """Buckets in one week: the main seasonal period."""
        return 168 if self.granularity == "1h" else 7

    def to_dict(self) -> dict[str, Any]:
        d = self.model_dump(mode="json", exclude_none=True)
        # a session field mapped to null means "the export has none": keep it, or it comes back as GA360's
        d["sessions"]["fields"] = self.sessions.fields.model_dump(mode="json")
        return d


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("str", "list[str]", "function-after[_name_ok(), str]") or "[" in str(part):
            continue  # pydantic's union-branch names are noise to a user
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def format_validation_error(err: ValidationError, source: str) -> str:
    """One line: where, which key, what is allowed, what was given."""
    e = err.errors()[0]
    key = _loc(tuple(e.get("loc", ())))
    kind = e.get("type", "")
    given = e.get("input")
    if kind == "extra_forbidden":
        msg = f"unknown key {key.split('.')[-1]!r}"
        parent = key.rsplit(".", 1)[0] if "." in key else None
        allowed = _allowed_keys(parent)
        if allowed:
            msg += f"; allowed here: {', '.join(allowed)}"
        return f"{source}: {msg}"
    if kind == "literal_error":
        expected = e.get("ctx", {}).get("expected", "")
        return f"{source}: {key}: must be one of {expected}; got {given!r}"
    text = e.get("msg", "invalid value").removeprefix("Value error, ")
    given_s = "" if isinstance(given, (dict, list)) or given is None else f"; got {given!r}"
    if key.endswith(".url") or key in ("store", "dashboard_url"):
        given_s = ""  # the message names the URL redacted: the given value may hold a token
    return f"{source}: {key}: {text}{given_s}"


def _allowed_keys(parent: str | None) -> list[str]:
    model: type[BaseModel] = Config
    if parent:
        name = re.sub(r"\[\d+\]", "", parent).split(".")[-1]
        model = {"metrics": Metric, "numerator": Aggregate, "denominator": Aggregate,
                 "columns": Columns, "notify": NotifyRoute, "calendar": CalendarEvent,
                 "sessions": SessionsConfig, "fields": SessionFields, "spark": SparkSettings}.get(name, Config)
    return list(model.model_fields)


def parse_config(data: Any, source: str = "config") -> Config:
    """Validate a mapping (as read from YAML) into a :class:`Config`."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of keys (granularity, metrics, ...); got {type(data).__name__}")
    try:
        return Config.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source)) from None


def load_config(path: str | Path | None) -> Config:
    """Read ``sleuth.yaml``; ``None`` gives the defaults (metrics derived from the data)."""
    if path is None:
        return Config()
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found; pass an existing sleuth.yaml or omit --config")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not a text file; a sleuth.yaml is UTF-8 YAML") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{p}:{where} is not valid YAML ({getattr(err, 'problem', err)}); fix the syntax") from None
    return parse_config(data, str(p))
