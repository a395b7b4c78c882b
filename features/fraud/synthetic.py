"""Seeded synthetic card transactions for the Fraud team: raw events, then the features built from them.

The local platform has no upstream data, so this stands in for it. The same seed and end
time give the same rows. ``--corrupt`` damages the data the way real pipelines break
(nulls, out-of-range values) so the Great Expectations gate can be seen stopping it.

    python features/fraud/synthetic.py --out .shipyard/local/data/fraud --seed 7
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

CATEGORIES = ("grocery", "travel", "electronics", "restaurants", "fuel", "gaming")
CATEGORY_RISK = {"grocery": 0.2, "travel": 1.0, "electronics": 1.2, "restaurants": 0.3, "fuel": 0.4, "gaming": 1.5}


def transactions(rng: np.random.Generator, users: int, days: int, end: datetime) -> pd.DataFrame:
    """Raw events: one row per card transaction, with a label (is_fraud) that depends on its context."""
    per_user = rng.poisson(1.5 * days, users) + 1
    user_id = np.repeat(np.arange(1000, 1000 + users), per_user)
    n = len(user_id)
    typical = rng.lognormal(3.5, 0.6, users)  # each user's usual spend
    base = np.repeat(typical, per_user)
    amount = np.round(base * rng.lognormal(0.0, 0.5, n), 2)
    age_s = rng.uniform(0, days * 86400, n)
    event_timestamp = pd.to_datetime(end) - pd.to_timedelta(age_s, unit="s")
    category = rng.choice(CATEGORIES, n)
    foreign = rng.random(n) < 0.08
    night = np.isin(event_timestamp.hour, [0, 1, 2, 3, 4])
    risk = (
        -5.0
        + 3.0 * np.log(amount / base)
        + 1.8 * foreign
        + 0.9 * night
        + np.vectorize(CATEGORY_RISK.get)(category)
    )
    label = (rng.random(n) < 1 / (1 + np.exp(-risk))).astype(np.int64)  # 1 when the event went bad
    frame = pd.DataFrame(
        {
            "transaction_id": np.arange(n, dtype=np.int64),
            "user_id": user_id.astype(np.int64),
            "event_timestamp": event_timestamp,
            "amount": amount,
            "merchant_category": category,
            "is_foreign": foreign.astype(np.int64),
            "is_fraud": label,
        }
    )
    return frame.sort_values("event_timestamp", kind="stable").reset_index(drop=True)


def user_stats(events: pd.DataFrame, end: datetime, days: int) -> pd.DataFrame:
    """Features: each user's trailing 7-day spending profile, as of the end of every day."""
    day = events.assign(day=events["event_timestamp"].dt.floor("D"))
    daily = day.groupby(["user_id", "day"]).agg(
        count=("amount", "size"),
        total=("amount", "sum"),
        peak=("amount", "max"),
        foreign=("is_foreign", "sum"),
    )
    # The newest day is the one the end time falls in; at exactly midnight, that is yesterday
    # (a day starting at `end` has no events, and its features would share `end` with yesterday's).
    newest = (pd.Timestamp(end) - pd.Timedelta(microseconds=1)).floor("D")
    calendar = pd.date_range(newest - pd.Timedelta(days=days - 1), periods=days, freq="D")
    grid = pd.MultiIndex.from_product([daily.index.levels[0], calendar], names=["user_id", "day"])
    daily = daily.reindex(grid, fill_value=0)
    rolling = daily.groupby(level="user_id", group_keys=False).rolling(7, min_periods=1).sum()
    rolling.index = daily.index
    peak = daily["peak"].groupby(level="user_id", group_keys=False).rolling(7, min_periods=1).max()
    peak.index = daily.index
    count = rolling["count"]
    stats = pd.DataFrame(
        {
            "txn_count_7d": count.astype(np.int64),
            "amount_mean_7d": (rolling["total"] / count.where(count > 0)).fillna(0.0).round(2),
            "amount_max_7d": peak.astype(float),
            "foreign_ratio_7d": (rolling["foreign"] / count.where(count > 0)).fillna(0.0).round(4),
        }
    ).reset_index()
    # A day's features are known once the day has ended (or at the end time, for today).
    stats["event_timestamp"] = (stats.pop("day") + pd.Timedelta(days=1)).clip(upper=pd.Timestamp(end))
    stats["created"] = stats["event_timestamp"]
    return stats


def corrupt(events: pd.DataFrame, stats: pd.DataFrame, how: str, rng: np.random.Generator) -> None:
    """Break the data in place the way upstream jobs do."""
    rows = rng.choice(len(stats), max(1, len(stats) // 50), replace=False)
    if how == "nulls":
        stats.loc[rows, "amount_mean_7d"] = np.nan
        events.loc[rng.choice(len(events), 25, replace=False), "amount"] = np.nan
    elif how == "range":
        stats.loc[rows, "foreign_ratio_7d"] = 3.5
        events.loc[rng.choice(len(events), 25, replace=False), "amount"] = -120.0


def generate(out: Path, *, seed: int, users: int, days: int, end: datetime, corruption: str | None = None) -> None:
    rng = np.random.default_rng(seed)
    events = transactions(rng, users, days, end)
    stats = user_stats(events, end, days)
    if corruption:
        corrupt(events, stats, corruption, rng)
    out.mkdir(parents=True, exist_ok=True)
    # Write then rename, so a reader never sees half a file.
    for name, frame in (("transactions", events), ("user_stats", stats)):
        partial = out / f".{name}.parquet.partial"
        frame.to_parquet(partial, index=False)
        partial.replace(out / f"{name}.parquet")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for transactions.parquet and user_stats.parquet")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--users", type=int, default=400)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--end", type=datetime.fromisoformat, help="newest event time (UTC); default: this hour")
    parser.add_argument("--corrupt", choices=("nulls", "range"), help="damage the data to exercise the checks")
    args = parser.parse_args()
    end = args.end or datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    if end.tzinfo is None:
        end = end.replace(tzinfo=UTC)
    generate(args.out, seed=args.seed, users=args.users, days=args.days, end=end, corruption=args.corrupt)


if __name__ == "__main__":
    main()
