"""GitHub's REST API for CI: the sticky pull-request comment and the drift issue of an environment.

Everything is passed in (token, repository, API URL, clock, sleep): nothing here reads the environment.
Every failure is a ``UserError`` (exit 1) naming the call and GitHub's message, with a hint, and saying
what state GitHub is in when the failing call was a write. Reads and idempotent writes (PATCH) are
retried on 5xx and network errors; a POST is not retried blindly: the operation looks again for what it
would have created, so a POST that GitHub applied before failing never leaves a second comment or issue.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shipyard.sdk.errors import UserError

#: GitHub rejects a comment or issue body longer than this many characters.
BODY_LIMIT = 65_536
API_VERSION = "2022-11-28"
#: A rate limit that resets within this many seconds is waited out; a later one fails.
MAX_WAIT = 60.0
PAGE_SIZE = 100

HINTS = {
    401: "GITHUB_TOKEN is missing, expired or revoked: in a workflow use ${{ secrets.GITHUB_TOKEN }}",
    403: "the token lacks a permission: the workflow needs `permissions: pull-requests: write` "
    "(comments) or `issues: write` (drift issues); a fork's pull request gets a read-only token",
    404: "check GITHUB_REPOSITORY (or --repository) and the number; a token that cannot see a "
    "private repository gets 404 too",
    422: "GitHub refused the content: see its errors above",
}


class Transient(Exception):
    """A failure worth another try (5xx, a network error); ``error`` is what to raise when tries run out."""

    def __init__(self, error: UserError) -> None:
        super().__init__(error.message)
        self.error = error


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    data: Any


@dataclass(frozen=True)
class GitHub:
    """A client for one repository (``owner/name``) of one GitHub API (``https://api.github.com``)."""

    token: str
    repository: str
    api_url: str = "https://api.github.com"
    timeout: float = 30.0
    tries: int = 4
    max_wait: float = MAX_WAIT
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    clock: Callable[[], float] = field(default=time.time, repr=False)
    user_agent: str = "shipyard-ci"

    def __post_init__(self) -> None:
        owner, _, name = self.repository.partition("/")
        if not owner or not name or "/" in name:
            raise UserError(
                f"GitHub repository '{self.repository}' is not owner/name",
                hint="set GITHUB_REPOSITORY=owner/name or pass --repository owner/name",
            )
        if not self.token:
            raise UserError("no GitHub token", hint="set GITHUB_TOKEN (in a workflow: ${{ secrets.GITHUB_TOKEN }})")

    @property
    def repo_path(self) -> str:
        return f"/repos/{self.repository}"

    # -- calls -------------------------------------------------------------------------------------------

    def get(self, path: str) -> Any:
        return self.call("GET", path).data

    def pages(self, path: str, **query: str) -> list[dict[str, Any]]:
        """Every item of a listing, following the ``Link: <...>; rel="next"`` headers."""
        url: str | None = self._url(path, {**query, "per_page": str(PAGE_SIZE)})
        items: list[dict[str, Any]] = []
        while url is not None:
            response = self.call("GET", url)
            if not isinstance(response.data, list):
                raise UserError(f"GitHub: GET {_short(url)} answered something other than a list")
            items += response.data
            url = self._next(response.headers.get("link", ""), url)
        return items

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Response:
        """One call; 5xx and network errors are tried again with backoff, except a POST's (``Transient``)."""
        url = path if path.startswith(("http://", "https://")) else self._url(path, {})
        for attempt in range(self.tries):
            try:
                return self._once(method, url, body)
            except Transient as failure:
                if method == "POST":
                    raise
                if attempt == self.tries - 1:
                    raise failure.error from None
                self.sleep(float(2**attempt))
        raise AssertionError("unreachable")

    def _once(self, method: str, url: str, body: dict[str, Any] | None) -> Response:
        """One call, waiting out a short rate limit (the call was not made, so trying again is safe)."""
        for _ in range(self.tries):
            status, headers, data = self._send(method, url, body)
            if status < 300:
                return Response(status, headers, data)
            wait = self._rate_limited(status, headers)
            if wait is None:
                raise self._failure(method, url, status, headers, data)
            if wait > self.max_wait:
                raise UserError(
                    f"GitHub: {method} {_short(url)} was rate limited until {_when(self.clock() + wait)} "
                    f"({_message(data)}); nothing was changed by this call",
                    hint="run the job again after that time, or use a token with a larger rate limit",
                )
            self.sleep(max(wait, 1.0))
        raise UserError(
            f"GitHub: {method} {_short(url)} was still rate limited after {self.tries} waits; nothing was changed "
            "by this call",
            hint="run the job again later",
        )

    def _send(self, method: str, url: str, body: dict[str, Any] | None) -> tuple[int, dict[str, str], Any]:
        payload = json.dumps(body).encode() if body is not None else None
        # http(s) only: the API URL is checked at the CLI, and a next page must be on the same origin
        request = urllib.request.Request(url, data=payload, method=method, headers=self._headers(payload))  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:  # noqa: S310
                return answer.status, _lower(answer.headers.items()), _json(answer.read())
        except urllib.error.HTTPError as error:
            with error:
                return error.code, _lower(error.headers.items()), _json(error.read())
        except (urllib.error.URLError, http.client.HTTPException, TimeoutError, ConnectionError) as error:
            reason = getattr(error, "reason", error)
            raise Transient(
                UserError(
                    f"GitHub: {method} {_short(url)} failed: {reason}" + _unknown(method),
                    hint=f"check that {self.api_url} is reachable from here (GITHUB_API_URL)",
                )
            ) from None

    def _headers(self, payload: bytes | None) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": self.user_agent,
        }
        if payload is not None:
            headers["Content-Type"] = "application/json"
        return headers

    def _rate_limited(self, status: int, headers: dict[str, str]) -> float | None:
        """Seconds until a rate limit lets the call through, or None when this is not a rate limit."""
        if status not in (403, 429):
            return None
        if "retry-after" in headers:  # a secondary rate limit
            return _number(headers["retry-after"], 60.0)
        if headers.get("x-ratelimit-remaining") == "0":
            reset = _number(headers.get("x-ratelimit-reset", ""), self.clock() + 60.0)
            return max(reset - self.clock(), 0.0)
        return None

    def _failure(self, method: str, url: str, status: int, headers: dict[str, str], data: Any) -> Exception:
        detail = _message(data)
        errors = data.get("errors") if isinstance(data, dict) else None
        if errors:
            detail += ": " + "; ".join(_error(e) for e in errors)
        message = f"GitHub: {method} {_short(url)} answered {status} {detail}"
        if status >= 500:
            return Transient(UserError(message + _unknown(method), hint="GitHub is failing: run the job again later"))
        message += "; nothing was changed" if method == "GET" else "; GitHub refused it, so this call changed nothing"
        hint = HINTS.get(status, "see GitHub's message")
        if status == 403 and "x-accepted-github-permissions" in headers:
            hint = f"the token needs {headers['x-accepted-github-permissions']}; " + hint
        return UserError(message, hint=hint)

    # -- helpers -----------------------------------------------------------------------------------------

    def _url(self, path: str, query: dict[str, str]) -> str:
        url = self.api_url.rstrip("/") + path
        return f"{url}?{urllib.parse.urlencode(query)}" if query else url

    def _next(self, link: str, current: str) -> str | None:
        """The ``rel="next"`` URL of a ``Link`` header; only one on the same API (the token goes with it)."""
        for part in link.split(","):
            target, _, params = part.partition(";")
            if 'rel="next"' in params.replace(" ", ""):
                url = target.strip().strip("<>")
                if not _same_origin(url, self.api_url):
                    raise UserError(
                        f"GitHub: GET {_short(current)} pointed its next page at another host ({url})",
                        hint="check GITHUB_API_URL",
                    )
                return url
        return None


# -- the sticky comment ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What an operation did: ``action`` (created, updated, unchanged, closed, nothing), and on what."""

    action: str
    number: int = 0
    url: str = ""


def marker_line(name: str) -> str:
    return f"<!-- {name} -->"


def first_line(body: str | None) -> str:
    return (body or "").split("\n", 1)[0].strip()


def check_length(body: str, what: str) -> None:
    if len(body) > BODY_LIMIT:
        raise UserError(
            f"the {what} would be {len(body):,} characters; GitHub takes at most {BODY_LIMIT:,}, so nothing was sent",
            hint="shorten the pieces (`shipyard plan --format markdown` keeps itself under the limit; "
            "the other files must be short)",
        )


def upsert_comment(api: GitHub, pr: int, marker: str, body: str) -> Outcome:
    """The one comment of pull request ``pr`` whose first line is ``marker``: created, or updated to ``body``."""
    check_length(body, "comment")
    listing = f"{api.repo_path}/issues/{pr}/comments"

    def find() -> dict[str, Any] | None:
        found = [c for c in api.pages(listing) if first_line(c.get("body")) == marker]
        if len(found) > 1:
            raise UserError(
                f"pull request #{pr} has {len(found)} comments starting with {marker}: "
                + ", ".join(f"{c.get('id')} ({c.get('html_url', '')})" for c in found)
                + "; nothing was changed",
                hint="delete all but one of them, then run the job again",
            )
        return found[0] if found else None

    def update(comment: dict[str, Any]) -> Outcome:
        if comment.get("body") == body:
            return Outcome("unchanged", int(comment["id"]), str(comment.get("html_url", "")))
        updated = api.call("PATCH", f"{api.repo_path}/issues/comments/{comment['id']}", {"body": body}).data
        return Outcome("updated", int(updated["id"]), str(updated.get("html_url", "")))

    def create() -> Outcome:
        created = api.call("POST", listing, {"body": body}).data
        return Outcome("created", int(created["id"]), str(created.get("html_url", "")))

    return _once(api, find, update, create)


def _once(
    api: GitHub,
    find: Callable[[], dict[str, Any] | None],
    update: Callable[[dict[str, Any]], Outcome],
    create: Callable[[], Outcome],
) -> Outcome:
    """Update what ``find`` finds, else create it; a create that failed in transit is never retried
    blindly: GitHub may have made it before failing, so it is looked for again first."""
    for attempt in range(api.tries):
        found = find()
        if found is not None:
            return update(found)
        try:
            return create()
        except Transient as failure:
            if attempt == api.tries - 1:
                raise failure.error from None
            api.sleep(float(2**attempt))
    raise AssertionError("unreachable")


# -- the drift issue -------------------------------------------------------------------------------------

DRIFT_MARKER = "<!-- shipyard-drift:{target} -->"
DRIFT, CLEAN = 2, 0


def drift_issue(api: GitHub, target: str, status: int, report: str, now: datetime, label: str = "drift") -> Outcome:
    """Keep one open issue per environment in step with ``shipyard drift``'s exit code ``status``:
    2 opens it or updates its body to ``report``, 0 closes it with a comment saying when, anything else
    is an error and changes nothing."""
    marker = DRIFT_MARKER.format(target=target)
    if status not in (DRIFT, CLEAN):
        raise UserError(
            f"shipyard drift exited {status} for {target}: it could not tell whether there is drift; "
            "the drift issue was left as it is",
            hint="read the drift step's output above",
        )
    if status == CLEAN:
        issue = _open_issue(api, target, marker)
        return Outcome("nothing") if issue is None else _close(api, issue, target, now)
    if first_line(report) != marker:
        raise UserError(
            f"the drift report does not start with {marker}",
            hint=f"write it with: shipyard drift -t {target} --format markdown > drift.md",
        )
    check_length(report, "drift issue")

    def update(issue: dict[str, Any]) -> Outcome:
        if issue.get("body") == report:
            return Outcome("unchanged", int(issue["number"]), str(issue.get("html_url", "")))
        updated = api.call("PATCH", f"{api.repo_path}/issues/{issue['number']}", {"body": report}).data
        return Outcome("updated", int(updated["number"]), str(updated.get("html_url", "")))

    def create() -> Outcome:
        fields: dict[str, Any] = {"title": f"Drift in {target}", "body": report}
        if label:
            fields["labels"] = [label]
        created = api.call("POST", f"{api.repo_path}/issues", fields).data
        return Outcome("created", int(created["number"]), str(created.get("html_url", "")))

    return _once(api, lambda: _open_issue(api, target, marker), update, create)


def _open_issue(api: GitHub, target: str, marker: str) -> dict[str, Any] | None:
    issues = api.pages(f"{api.repo_path}/issues", state="open")
    found = [i for i in issues if "pull_request" not in i and first_line(i.get("body")) == marker]
    if len(found) > 1:
        raise UserError(
            f"{len(found)} open issues start with {marker}: "
            + ", ".join(f"#{i.get('number')} ({i.get('html_url', '')})" for i in found)
            + "; nothing was changed",
            hint=f"close all but one drift issue of {target}, then run the job again",
        )
    return found[0] if found else None


def _close(api: GitHub, issue: dict[str, Any], target: str, now: datetime) -> Outcome:
    number = int(issue["number"])
    text = f"No drift on `{target}` at {_when(now.timestamp())}: closing. A later drift run opens a new issue."
    try:
        api.call("POST", f"{api.repo_path}/issues/{number}/comments", {"body": text})
    except Transient as failure:
        raise UserError(
            f"{failure.error.message}; issue #{number} is still open",
            hint="run the job again: the next clean run closes it",
        ) from None
    try:
        closed = api.call("PATCH", f"{api.repo_path}/issues/{number}", {"state": "closed", "state_reason": "completed"})
    except UserError as error:
        raise UserError(
            f"{error.message}; issue #{number} got its 'no drift' comment but is still open",
            hint="run the job again, or close it by hand",
        ) from None
    return Outcome("closed", number, str(closed.data.get("html_url", "")))


# -- small pure helpers ----------------------------------------------------------------------------------


def _json(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")[:300]


def _lower(items: Any) -> dict[str, str]:
    return {str(key).lower(): str(value) for key, value in items}


def _message(data: Any) -> str:
    if isinstance(data, dict):
        return str(data.get("message") or "(no message)")
    return str(data or "(no message)").strip()[:300]


def _error(error: Any) -> str:
    if not isinstance(error, dict):
        return str(error)
    if error.get("message"):
        return str(error["message"])
    where = ".".join(str(error[k]) for k in ("resource", "field") if error.get(k))
    return f"{where} {error.get('code', '')}".strip()


def _number(text: str, default: float) -> float:
    try:
        return float(text)
    except ValueError:
        return default


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _short(url: str) -> str:
    """A URL as its path: ``/repos/o/r/issues/7/comments``, without the API's host and the paging query."""
    return urllib.parse.urlsplit(url).path or url


def _same_origin(url: str, base: str) -> bool:
    a, b = urllib.parse.urlsplit(url), urllib.parse.urlsplit(base)
    return (a.scheme, a.netloc) == (b.scheme, b.netloc)


def _unknown(method: str) -> str:
    if method == "GET":
        return "; nothing was changed"
    return "; GitHub may or may not have applied this write"
