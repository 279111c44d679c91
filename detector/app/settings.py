"""Settings: pydantic-settings from ``DETECTOR_*`` environment variables and a YAML file.

Nesting uses ``__`` (``DETECTOR_KAFKA__BOOTSTRAP_SERVERS``). Precedence, highest first:
explicit arguments, environment, the YAML file (``--config`` or ``DETECTOR_CONFIG``), defaults.
Every adapter owns its section; validation errors are collected and reported together.

A relative path written in the YAML file is relative to the file's folder, wherever
``detector`` starts; one from the environment or a default is relative to the working
directory. Every setting typed ``Path`` follows this rule (:func:`anchor_paths`).
"""

from __future__ import annotations

import types
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from detector.app.sigmahq import SIGMAHQ_DISABLED, SIGMAHQ_RULES
from detector.detect.loader import DEFAULT_MAX_RULE_FILE_BYTES
from detector.detect.policy import Status
from detector.detect.suppression import DEFAULT_WINDOW_SECONDS
from detector.errors import ConfigError
from detector.models import SourceName, WireFormat
from detector.models.alerts import Level
from detector.sinks.config import SinksConfig
from detector.sinks.envlist import EnvList
from detector.sources.kafka import KafkaSourceConfig
from detector.sources.schemaregistry import SchemaRegistryConfig


class TopicConfig(BaseModel):
    """How to read one topic: which source parser and which wire format."""

    source: SourceName = "auto"
    format: WireFormat = "json"


class KafkaConfig(KafkaSourceConfig):
    """The ``kafka`` section: consumer settings plus per-topic parsing and internal topics.

    ``group_id`` is the detect stage's consumer group (source topics); the correlate
    stage consumes ``matches_topic`` in ``correlate_group_id`` and keeps its state in the
    compacted ``state_topic``. Internal topics are created when missing with
    ``matches_partitions`` partitions (the correlate stage's unit of scale-out) and
    ``internal_replication_factor`` replicas (default: min(3, brokers)).
    """

    topic_formats: dict[str, TopicConfig] = Field(default_factory=dict)
    deadletter_topic: str = "detector-deadletter"
    matches_topic: str = "detector-matches"
    matches_partitions: int = Field(default=6, ge=1)
    state_topic: str = "detector-state"
    correlate_group_id: str = "detector-correlate"
    internal_replication_factor: int | None = Field(default=None, ge=1)
    state_snapshot_interval_seconds: float = Field(default=0.0, ge=0)
    #: A caught-up source partition without records this long stops holding the watermark.
    source_idle_seconds: float = Field(default=60.0, gt=0)
    #: A source partition no member reported while others did for this long is skipped
    #: (it was deleted or is no longer consumed); 0 never skips one.
    source_stale_seconds: float = Field(default=600.0, ge=0)


class SuppressionConfig(BaseModel):
    """The ``rules.suppression`` section: alert suppression defaults (docs/policy.md).

    ``enabled`` suppresses every correlation by its group-by within its timespan, and,
    when ``group_by`` is set, every single-event rule by those fields within
    ``window_seconds``. A rule's own ``suppression`` attribute always wins.
    """

    #: Suppress every correlation (by its group-by, within its timespan).
    enabled: bool = False
    #: Fields single-event rules are suppressed by when enabled (empty: they are not).
    group_by: EnvList = Field(default_factory=list)
    #: Window of single-event rules, aligned on event time.
    window_seconds: float = Field(default=DEFAULT_WINDOW_SECONDS, gt=0)


class PlaceholderFile(BaseModel):
    """Values of one placeholder kept in a text file (for example a mounted ConfigMap).

    One value per line; blank lines and lines starting with ``#`` are skipped.
    """

    model_config = ConfigDict(extra="forbid")

    file: Path


class RulesConfig(BaseModel):
    """The ``rules`` section: where rules live, placeholder values, engine options and policy.

    ``placeholders`` maps a placeholder name (``%ci_networks%`` in a rule is
    ``ci_networks``) to its values, inline or ``{file: path}``. ``missing_placeholders``
    says what a rule using a placeholder without values does: ``error`` (start-up fails,
    listing each rule and placeholder) or ``disable`` (the rule is left out, with a warning).

    Policy (:mod:`detector.detect.policy`): ``exceptions`` files or directories of
    exceptions; ``disabled`` rule ids or names turned off; ``min_level`` and ``statuses``
    keep only rules at or above a level and with one of these statuses;
    ``level_overrides`` maps a rule id or name to the level its alerts carry;
    ``suppression`` the alert suppression defaults.

    By default the project's pack and the bundled SigmaHQ pack load, and ``disabled`` holds
    the SigmaHQ pack's shipped tuning (:mod:`detector.app.sigmahq`); a ``disabled`` setting
    replaces that list.
    """

    # Account ids written as YAML numbers stay usable (quote them to keep leading zeros).
    model_config = ConfigDict(coerce_numbers_to_str=True)

    #: Rule files or directories (searched recursively for ``.yml``/``.yaml``).
    paths: list[Path] = Field(default_factory=lambda: [Path("detections/rules"), SIGMAHQ_RULES])
    #: Placeholder name -> values, a list or ``{file: path}`` (DETECTIONS.md, Placeholders).
    placeholders: dict[str, list[str] | PlaceholderFile] = Field(default_factory=dict)
    #: A rule using a placeholder without values: ``error`` stops start-up, ``disable`` skips it.
    missing_placeholders: Literal["error", "disable"] = "error"
    #: Rule files larger than this are rejected unread (a bad rule costs only itself).
    max_file_bytes: int = Field(default=DEFAULT_MAX_RULE_FILE_BYTES, ge=1024)
    #: Seconds the watermark trails the newest event time: later events still count.
    allowed_lateness_seconds: float = Field(default=60.0, ge=0)
    #: Group keys kept per rule and partition; a new one beyond it evicts the least recent.
    max_groups_per_rule: int = Field(default=100_000, ge=1)
    #: Exception files or directories (docs/policy.md).
    exceptions: list[Path] = Field(default_factory=list)
    #: Rule ids or names turned off (default: the SigmaHQ pack's shipped tuning).
    disabled: EnvList = Field(default_factory=lambda: list(SIGMAHQ_DISABLED))
    #: Rules below this level (after level_overrides) do not run.
    min_level: Level | None = None
    #: Only rules with one of these statuses run (no status counts as experimental).
    statuses: list[Status] | None = None
    #: Rule id or name -> the level its alerts carry.
    level_overrides: dict[str, Level] = Field(default_factory=dict)
    suppression: SuppressionConfig = Field(default_factory=SuppressionConfig)


class DecodeConfig(BaseModel):
    """The ``decode`` section: limits applied to every incoming record, the local Avro
    schemas, and optionally the schema registry that resolves ids they do not list."""

    #: Larger records are dead-lettered unread.
    max_record_bytes: int = Field(default=1024 * 1024, ge=1024)
    #: Avro schemas and ``registry.yaml`` (the offline schema-id map).
    schemas_dir: Path = Path("schemas")
    schema_registry: SchemaRegistryConfig | None = None


#: Default reorder bound of each replay input: an event is released once it is this many
#: seconds older than the newest event of its input ...
REORDER_SECONDS = 900.0
#: ... or once more events than this of its input wait (the bound on memory).
REORDER_EVENTS = 20_000


class ReplayConfig(BaseModel):
    """The ``replay`` section: the reorder bound of each ``detector replay`` input.

    An event waits until it is ``reorder_seconds`` older than the newest event of its
    file, or until more than ``reorder_events`` events of that file wait (the memory
    bound); an event older than one already released is counted as late and applied
    as the runtime applies a too-late match.
    """

    #: Seconds an event waits for older ones of its file before replay applies it.
    reorder_seconds: float = Field(default=REORDER_SECONDS, ge=0)
    #: Events of one file that may wait at most (bounds replay's memory per file).
    reorder_events: int = Field(default=REORDER_EVENTS, ge=1)


class HealthConfig(BaseModel):
    """The ``health`` section: the HTTP endpoint for /healthz, /readyz and /metrics."""

    enabled: bool = True
    #: Listen address; ``127.0.0.1`` keeps the endpoint off the network.
    host: str = "0.0.0.0"
    #: Listen port (0 picks a free one).
    port: int = Field(default=8080, ge=0, le=65535)


class RunConfig(BaseModel):
    """The ``run`` section: how ``detector run`` uses the machine."""

    #: Processes of one ``detector run``, each a full member of the consumer groups (Kafka
    #: Streams' ``num.stream.threads``; processes because Python code runs on one core per
    #: process). Worker ``i`` serves its health endpoint on ``health.port + i``.
    workers: int = Field(default=1, ge=1, le=64)


class LogConfig(BaseModel):
    """The ``log`` section."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    #: ``json`` lines for log collectors, ``console`` for people.
    format: Literal["json", "console"] = "json"


def anchor_paths(annotation: Any, value: Any, base: Path) -> Any:
    """``value`` (raw YAML data of a field typed ``annotation``) with relative paths made
    relative to ``base``: fields typed ``Path`` at any depth (optional, in lists, dicts,
    unions and nested models)."""
    origin = get_origin(annotation)
    if annotation is Path:
        if isinstance(value, str) and not Path(value).expanduser().is_absolute():
            return str(base / value)
        return value
    if origin is Annotated:
        return anchor_paths(get_args(annotation)[0], value, base)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if not isinstance(value, dict):
            return value
        fields = annotation.model_fields
        return {
            k: anchor_paths(fields[k].annotation, v, base) if k in fields else v
            for k, v in value.items()
        }
    if origin in (Union, types.UnionType):
        for member in get_args(annotation):
            anchored = anchor_paths(member, value, base)
            if anchored != value:
                return anchored
        return value
    if origin in (list, tuple, set, frozenset) and isinstance(value, list):
        return [anchor_paths(get_args(annotation)[0], v, base) for v in value]
    if origin is dict and isinstance(value, dict):
        return {k: anchor_paths(get_args(annotation)[1], v, base) for k, v in value.items()}
    return value


class _YamlFileSource(YamlConfigSettingsSource):
    """The YAML settings file, its relative paths anchored at the file's folder."""

    def __init__(self, settings_cls: type[BaseSettings], yaml_file: Path) -> None:
        self._model = settings_cls
        super().__init__(settings_cls, yaml_file=yaml_file)

    def _read_file(self, file_path: Any) -> dict[str, Any]:
        data = super()._read_file(file_path)
        base = Path(str(file_path)).absolute().parent
        anchored: dict[str, Any] = anchor_paths(self._model, data, base)
        return anchored


class DetectorSettings(BaseSettings):
    """All settings of a detector process."""

    model_config = SettingsConfigDict(
        env_prefix="DETECTOR_",
        env_nested_delimiter="__",
        extra="forbid",
        yaml_file=None,
    )

    kafka: KafkaConfig = Field(default_factory=KafkaConfig)
    rules: RulesConfig = Field(default_factory=RulesConfig)
    decode: DecodeConfig = Field(default_factory=DecodeConfig)
    sinks: SinksConfig = Field(default_factory=SinksConfig)
    health: HealthConfig = Field(default_factory=HealthConfig)
    run: RunConfig = Field(default_factory=RunConfig)
    replay: ReplayConfig = Field(default_factory=ReplayConfig)
    log: LogConfig = Field(default_factory=LogConfig)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments, then environment, then the YAML file named in the model config."""
        yaml_file = settings_cls.model_config.get("yaml_file")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if isinstance(yaml_file, str | Path):  # load_settings sets one file
            sources.append(_YamlFileSource(settings_cls, yaml_file=Path(yaml_file)))
        return tuple(sources)


def load_settings(config_file: Path | None = None, **overrides: Any) -> DetectorSettings:
    """Load and validate settings; every problem is reported at once as :class:`ConfigError`."""
    if config_file is not None and not config_file.is_file():
        raise ConfigError(f"config file {config_file} does not exist")

    class _Settings(DetectorSettings):
        model_config = SettingsConfigDict(yaml_file=config_file)

    try:
        return _Settings(**overrides)
    except ValidationError as exc:
        problems = "\n".join(
            f"  - {'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(
            f"invalid configuration ({exc.error_count()} problem(s)); set them in the YAML file "
            f"or as DETECTOR_<SECTION>__<KEY> environment variables:\n{problems}"
        ) from exc


def redacted(settings: DetectorSettings) -> dict[str, Any]:
    """Settings as a JSON-ready dict with every secret replaced by ``"**********"``."""
    redacted_value: dict[str, Any] = _redact(settings.model_dump(mode="python"))
    return redacted_value


def _redact(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return "**********" if value.get_secret_value() else ""
    if isinstance(value, dict):
        return {k: _redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
