"""One applier per environment: a lock object taken by compare-and-swap and kept by renewing it.

The lock names its holder (owner, host, run URL, plan, commit) and an expiry. It is created
only if absent; a holder renews it with a conditional replace while it works, so a live
holder's lease never runs out under it. A holder that stopped renewing (its lease expired)
or, in local state, whose process is gone, may be taken over, by a conditional replace of
exactly what was read, so of several takers one wins; the takeover is journaled. A lock that
cannot be read is held, never abandoned. ``break_lock`` is ``shipyard unlock``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from shipyard.engine.state.identity import RunIdentity, process_alive
from shipyard.engine.state.journal import Journal
from shipyard.engine.state.store import ObjectStore, Stored
from shipyard.sdk.errors import LockHeld, ShipyardError, UserError

LOCK = "lock.json"
DEFAULT_LEASE_S = 5 * 60


@dataclass(frozen=True)
class Holder:
    run: RunIdentity
    plan: str
    acquired: float
    expires: float

    @classmethod
    def parse(cls, stored: Stored, where: str) -> Holder:
        try:
            data = json.loads(stored.data)
            return cls(RunIdentity(**data["run"]), str(data["plan"]), float(data["acquired"]), float(data["expires"]))
        except (ValueError, KeyError, TypeError) as error:
            raise LockHeld(
                f"the lock {where} is not a Shipyard lock ({type(error).__name__}: {error}); it counts as held",
                hint="if no apply is running: shipyard unlock --target <env> --reason '...'",
            ) from error

    def to_bytes(self) -> bytes:
        data = {"run": self.run.to_dict(), "plan": self.plan, "acquired": self.acquired, "expires": self.expires}
        return json.dumps(data, sort_keys=True).encode()

    def describe(self) -> str:
        return f"{self.run.describe()} since {_when(self.acquired)}"


class Lease:
    """Held for the whole of an apply (a context manager); ``check()`` says whether it still is."""

    def __init__(
        self,
        store: ObjectStore,
        journal: Journal,
        run: RunIdentity,
        plan: str = "",
        *,
        lease_s: float = DEFAULT_LEASE_S,
        same_machine: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.journal = journal
        self.run = run
        self.plan = plan
        self.lease_s = lease_s
        self.same_machine = same_machine  # local state: a holder whose process is gone is abandoned at once
        self.clock = clock
        self._tag = ""
        self._acquired = 0.0
        self._lost = ""
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._mutex = threading.Lock()

    def __enter__(self) -> Lease:
        self.acquire()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.release()

    def acquire(self) -> None:
        where = self.store.where(LOCK)
        for _ in range(5):
            tag = self.store.create(LOCK, self._mine().to_bytes())
            if tag is not None:
                return self._held(tag)
            current = self.store.get(LOCK)
            if current is None:
                continue  # released between the two calls: try again
            holder = Holder.parse(current, where)
            if not self._abandoned(holder):
                raise LockHeld(
                    f"the target is being applied by {holder.describe()} (plan {holder.plan[:12] or 'fresh'})",
                    hint="wait for it to finish; if it is gone for good: shipyard unlock --target <env> --reason '...'",
                )
            tag = self.store.replace(LOCK, self._mine().to_bytes(), current.tag)
            if tag is not None:
                self.journal.record("", "takeover", detail=f"lease of {holder.describe()} had expired")
                return self._held(tag)
        raise LockHeld(f"could not take the lock {where}: other applies kept racing for it", hint="run apply again")

    def check(self) -> None:
        """Raise LockHeld when the lock was broken or taken from under this apply."""
        if self._lost:
            raise LockHeld(self._lost, hint="someone ran shipyard unlock; plan and apply again once they are done")

    def renew(self) -> bool:
        with self._mutex:
            if self._lost or not self._tag:
                return False
            tag = self.store.replace(LOCK, self._mine(acquired=self._acquired).to_bytes(), self._tag)
            if tag is None:
                self._lost = f"the lock {self.store.where(LOCK)} was broken or taken over while this apply held it"
                return False
            self._tag = tag
            return True

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        with self._mutex:
            if self._tag and not self._lost:
                self.store.delete(LOCK, self._tag)
            self._tag = ""

    def _held(self, tag: str) -> None:
        self._tag = tag
        self._renewer = threading.Thread(target=self._renew_until_released, name="shipyard-lease", daemon=True)
        self._renewer.start()

    def _renew_until_released(self) -> None:
        while not self._stop.wait(self.lease_s / 3):
            try:
                if not self.renew():
                    return
            except ShipyardError:  # S3 unreachable for a moment: try again; expiry is what protects others
                continue

    def _mine(self, acquired: float | None = None) -> Holder:
        now = self.clock()
        if acquired is None:
            self._acquired = now
        return Holder(self.run, self.plan, acquired or now, now + self.lease_s)

    def _abandoned(self, holder: Holder) -> bool:
        if holder.expires < self.clock():
            return True  # it stopped renewing
        same_host = self.same_machine and holder.run.host == self.run.host
        return same_host and not process_alive(holder.run.pid, holder.run.started)


def break_lock(store: ObjectStore, journal: Journal, reason: str) -> Holder | None:
    """``shipyard unlock``: remove the lock whoever holds it, journaling who broke it and why."""
    if not reason.strip():
        raise UserError("unlock needs a reason", hint="shipyard unlock --target <env> --reason 'the runner was killed'")
    current = store.get(LOCK)
    if current is None:
        return None
    try:
        holder: Holder | None = Holder.parse(current, store.where(LOCK))
    except LockHeld:
        holder = None  # not JSON: breaking it is exactly what unlock is for
    if not store.delete(LOCK, current.tag):
        raise LockHeld(f"the lock {store.where(LOCK)} changed while unlocking", hint="look again: shipyard unlock ...")
    was = holder.describe() if holder else "an unreadable lock"
    journal.record("", "unlock", detail=f"broke the lock of {was}: {reason}")
    return holder


def _when(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(at))
