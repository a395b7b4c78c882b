"""The features plane's kinds: ``FeatureStore`` (one per environment) and ``DataCheck`` (per data set)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from shipyard.sdk.kinds import SpecModel

Column = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="A column name")]


class OfflineStore(SpecModel):
    type: Literal["file"] = Field(description="Feast offline store type: parquet files, local or on S3")
    uri: str = Field(
        description="Folder or S3 prefix of each team's data; '{team}' is replaced by the team name",
        pattern=r"^(s3://[a-z0-9.-]+/|[^/:]).*\{team\}.*$",
    )


class OnlineStore(SpecModel):
    type: Literal["sqlite", "redis", "dynamodb"] = Field(description="Feast online store type")
    path: str | None = Field(default=None, description="SQLite file (sqlite only); may use '{team}'")
    connection_string: str | None = Field(default=None, description="host:port[,ssl=true] (redis only)")
    region: str | None = Field(default=None, description="AWS region (dynamodb only)")

    @model_validator(mode="after")
    def _settings_match_type(self) -> OnlineStore:
        needs = {"sqlite": "path", "redis": "connection_string", "dynamodb": "region"}[self.type]
        if getattr(self, needs) is None:
            raise ValueError(f"a {self.type} online store needs '{needs.replace('_s', 'S')}'")
        return self


class Registry(SpecModel):
    type: Literal["file", "sql"] = Field(description="Feast registry type: a file (local or S3) or a SQL database")
    path: str = Field(description="Registry file, S3 object or SQLAlchemy URL; '{team}' is replaced by the team name")


class Materialization(SpecModel):
    lookback_days: int = Field(
        default=30, ge=1, le=365, description="Days before the newest event that apply materializes (local target)"
    )


class FeatureStoreSpec(SpecModel):
    """Where one environment keeps every team's features. metadata.name is the environment."""

    offline: OfflineStore
    online: OnlineStore
    registry: Registry
    materialization: Materialization = Materialization()


class NotNull(SpecModel):
    expect: Literal["notNull"]
    column: Column


class Between(SpecModel):
    expect: Literal["between"]
    column: Column
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _bounded(self) -> Between:
        if self.min is None and self.max is None:
            raise ValueError("'between' needs 'min', 'max' or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"'min' ({self.min}) is greater than 'max' ({self.max})")
        return self


class InSet(SpecModel):
    expect: Literal["inSet"]
    column: Column
    values: list[str | int | float] = Field(min_length=1)


class Unique(SpecModel):
    expect: Literal["unique"]
    columns: list[Column] = Field(min_length=1, description="Columns whose combination must be unique")


class Fresh(SpecModel):
    expect: Literal["fresh"]
    column: Column
    max_age_hours: float = Field(gt=0, description="The newest value must be at most this many hours old")


class RowCount(SpecModel):
    expect: Literal["rowCount"]
    min: int = Field(default=1, ge=0)
    max: int | None = Field(default=None, ge=0)


Expectation = Annotated[NotNull | Between | InSet | Unique | Fresh | RowCount, Field(discriminator="expect")]


class DataCheckSpec(SpecModel):
    """Great Expectations checks on one data set of a team; they gate materialization and training."""

    path: str = Field(
        pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*\.parquet$",
        description="A parquet file relative to the team's offline data (features/stores/<env>.yaml)",
    )
    feature_views: list[str] = Field(
        default_factory=list, description="Feature views built from this data: their materialization waits for it"
    )
    sample_rows: int = Field(default=5000, ge=100, description="Rows checked during plan (all rows at apply)")
    expectations: list[Expectation] = Field(min_length=1)
