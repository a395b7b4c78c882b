"""The Fraud team's features: each card holder's trailing 7-day spending profile.

``offline_uri()`` is where this team's offline data lives in the environment being planned
(a folder locally, an S3 prefix in the cloud); the features plane answers it from
``features/stores/<env>.yaml`` while it reads these definitions.
"""

from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int64

from shipyard.sdk.featurerepo import offline_uri

OFFLINE = offline_uri()

user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64, description="A card holder.")

user_stats_source = FileSource(
    name="user_stats",
    path=f"{OFFLINE}/user_stats.parquet",
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
    description="Daily per-user aggregates of card transactions.",
)

user_stats = FeatureView(
    name="user_stats",
    entities=[user],
    ttl=timedelta(days=2),
    schema=[
        Field(name="user_id", dtype=Int64),
        Field(name="txn_count_7d", dtype=Int64, description="Transactions in the last 7 days."),
        Field(name="amount_mean_7d", dtype=Float64, description="Mean amount over 7 days."),
        Field(name="amount_max_7d", dtype=Float64, description="Largest amount over 7 days."),
        Field(name="foreign_ratio_7d", dtype=Float64, description="Share of foreign transactions over 7 days."),
    ],
    source=user_stats_source,
    online=True,
    tags={"owner": "@fraud-ml-leads"},
)

fraud_scorer = FeatureService(
    name="fraud_scorer",
    features=[user_stats],
    description="What the Fraud scorer reads at training and serving time.",
)
