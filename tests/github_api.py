"""A loopback GitHub REST API: the calls ``shipyard ci`` makes, with GitHub's shapes, state in memory.

Issue comments of an issue or pull request (list, create, update), issues (list, create, update). Listings
are paginated with real ``Link: <...>; rel="next"`` headers (``page_size`` caps ``per_page`` to force
several pages); every call needs ``Authorization: Bearer <token>`` (401 otherwise); ``fail(n, status, ...)``
makes the next ``n`` calls answer an error, with the headers given (rate limits). Bodies over GitHub's
65,536 characters are refused with 422, as GitHub does. ``calls`` records every request.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

LIMIT = 65_536
MESSAGES = {
    401: "Bad credentials",
    403: "Resource not accessible by integration",
    404: "Not Found",
    422: "Validation Failed",
}
USER = {"login": "github-actions[bot]", "id": 41898282, "type": "Bot"}


@dataclass
class Failure:
    status: int
    message: str
    headers: dict[str, str] = field(default_factory=dict)
    errors: list[dict[str, Any]] | None = None
    on: str = "any"  # "any" call, any "write", or one method ("PATCH")
    applied: bool = False  # the call is carried out, then answered with the error (a 502 after the write)

    def applies(self, method: str) -> bool:
        return self.on in ("any", method) or (self.on == "write" and method != "GET")


@dataclass
class GitHubState:
    token: str = "ghs_test"
    repository: str = "acme/platform"
    page_size: int = 100
    url: str = ""
    issues: dict[int, dict[str, Any]] = field(default_factory=dict)
    comments: dict[int, dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    slept: list[float] = field(default_factory=list)  # the waits of the client under test (its fake sleep)
    next_id: int = 1000
    lock: threading.Lock = field(default_factory=threading.Lock)

    # -- what tests set up and read ------------------------------------------------------------------

    def fail(
        self,
        count: int,
        status: int,
        message: str = "",
        headers: dict[str, str] | None = None,
        errors: list[dict[str, Any]] | None = None,
        on: str = "any",
        applied: bool = False,
    ) -> None:
        """The next ``count`` calls (``on``: any call, any "write", or those of one method) answer ``status``,
        with GitHub's message for it unless one is given; ``applied``: after doing what was asked."""
        text = message or MESSAGES.get(status, "Server Error")
        self.failures += [Failure(status, text, dict(headers or {}), errors, on, applied) for _ in range(count)]

    def add_pull(self, number: int, title: str = "A change") -> dict[str, Any]:
        return self._issue(number, title, "", pull=True)

    def add_issue(self, title: str, body: str, state: str = "open") -> dict[str, Any]:
        with self.lock:
            number = self._number()
        issue = self._issue(number, title, body)
        issue["state"] = state
        return issue

    def add_comment(self, number: int, body: str, login: str = "someone") -> dict[str, Any]:
        with self.lock:
            return self._comment(number, body, {**USER, "login": login, "type": "User"})

    def comments_on(self, number: int) -> list[dict[str, Any]]:
        return [c for c in self.comments.values() if c["issue_number"] == number]

    def writes(self) -> list[tuple[str, str]]:
        return [(method, path) for method, path in self.calls if method != "GET"]

    # -- the records, as GitHub shapes them ----------------------------------------------------------

    def _number(self) -> int:
        return max(self.issues, default=0) + 1

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id

    def _issue(self, number: int, title: str, body: str, pull: bool = False) -> dict[str, Any]:
        web = f"https://github.com/{self.repository}"
        issue: dict[str, Any] = {
            "id": self._id(),
            "number": number,
            "title": title,
            "body": body,
            "state": "open",
            "state_reason": None,
            "labels": [],
            "user": USER,
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z",
            "url": f"{self.url}/repos/{self.repository}/issues/{number}",
            "html_url": f"{web}/{'pull' if pull else 'issues'}/{number}",
        }
        if pull:
            issue["pull_request"] = {"url": f"{self.url}/repos/{self.repository}/pulls/{number}"}
        self.issues[number] = issue
        return issue

    def _comment(self, number: int, body: str, user: dict[str, Any] = USER) -> dict[str, Any]:
        ident = self._id()
        kind = "pull" if "pull_request" in self.issues[number] else "issues"
        comment = {
            "id": ident,
            "issue_number": number,
            "body": body,
            "user": user,
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z",
            "url": f"{self.url}/repos/{self.repository}/issues/comments/{ident}",
            "html_url": f"https://github.com/{self.repository}/{kind}/{number}#issuecomment-{ident}",
            "issue_url": f"{self.url}/repos/{self.repository}/issues/{number}",
        }
        self.comments[ident] = comment
        return comment


class Handler(BaseHTTPRequestHandler):
    state: GitHubState
    quiet = False  # carrying out a call whose answer is a failure

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def _handle(self, method: str) -> None:
        state = self.state
        parts = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(parts.query))
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        with state.lock:
            state.calls.append((method, parts.path))
            state.headers.append({k.lower(): v for k, v in self.headers.items()})
            failure = next((f for f in state.failures if f.applies(method)), None)
            if failure is not None:
                state.failures.remove(failure)
                data: dict[str, Any] = {
                    "message": failure.message,
                    "documentation_url": "https://docs.github.com/rest",
                }
                if failure.errors is not None:
                    data["errors"] = failure.errors
                if failure.applied:
                    self.quiet = True
                    self._route(method, parts.path, query, json.loads(raw) if raw else {})
                    self.quiet = False
                return self._send(failure.status, data, failure.headers)
            if self.headers.get("Authorization") != f"Bearer {state.token}":
                return self._send(401, {"message": "Bad credentials", "documentation_url": "https://docs.github.com"})
            body = json.loads(raw) if raw else {}
            self._route(method, parts.path, query, body)
        return None

    def _route(self, method: str, path: str, query: dict[str, str], body: dict[str, Any]) -> None:
        state = self.state
        prefix = f"/repos/{state.repository}"
        if not path.startswith(prefix + "/"):
            return self._not_found()
        rest = path[len(prefix) :]
        if match := re.fullmatch(r"/issues/(\d+)/comments", rest):
            number = int(match[1])
            if number not in state.issues:
                return self._not_found()
            if method == "GET":
                found = sorted((c for c in state.comments.values() if c["issue_number"] == number), key=_id)
                return self._page(path, query, found)
            if method == "POST" and self._fits(body, "IssueComment"):
                return self._send(201, state._comment(number, body["body"]))
        elif match := re.fullmatch(r"/issues/comments/(\d+)", rest):
            comment = state.comments.get(int(match[1]))
            if comment is None:
                return self._not_found()
            if method == "PATCH" and self._fits(body, "IssueComment"):
                comment.update(body=body["body"], updated_at="2026-01-02T00:00:00Z")
                return self._send(200, comment)
        elif rest == "/issues":
            if method == "GET":
                wanted = query.get("state", "open")
                found = [i for i in state.issues.values() if wanted == "all" or i["state"] == wanted]
                return self._page(path, query, sorted(found, key=lambda i: -int(i["number"])))
            if method == "POST" and self._fits(body, "Issue"):
                issue = state._issue(state._number(), body.get("title", ""), body.get("body", ""))
                issue["labels"] = [{"name": name} for name in body.get("labels", [])]
                return self._send(201, issue)
        elif match := re.fullmatch(r"/issues/(\d+)", rest):
            found_issue = state.issues.get(int(match[1]))
            if found_issue is None:
                return self._not_found()
            if method == "PATCH" and self._fits(body, "Issue"):
                found_issue.update({k: v for k, v in body.items() if k in ("body", "state", "state_reason", "title")})
                return self._send(200, found_issue)
        return self._not_found()

    def _fits(self, body: dict[str, Any], resource: str) -> bool:
        if len(body.get("body") or "") <= LIMIT:
            return True
        error = {
            "resource": resource,
            "code": "custom",
            "field": "body",
            "message": f"body is too long (maximum is {LIMIT} characters)",
        }
        self._send(422, {"message": "Validation Failed", "errors": [error], "documentation_url": "https://docs"})
        return False

    def _page(self, path: str, query: dict[str, str], items: list[dict[str, Any]]) -> None:
        size = min(int(query.get("per_page", "30")), self.state.page_size)
        page = int(query.get("page", "1"))
        shown = items[(page - 1) * size : page * size]
        headers = {}
        if page * size < len(items):
            links = []
            for rel, number in (("next", page + 1), ("last", (len(items) + size - 1) // size)):
                q = urllib.parse.urlencode({**query, "page": str(number)})
                links.append(f'<{self.state.url}{path}?{q}>; rel="{rel}"')
            headers["Link"] = ", ".join(links)
        self._send(200, shown, headers)

    def _not_found(self) -> None:
        self._send(404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"})

    def _send(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        if self.quiet:
            return
        raw = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(raw)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(raw)


def _id(comment: dict[str, Any]) -> int:
    return int(comment["id"])


@contextmanager
def github_api(state: GitHubState | None = None) -> Iterator[GitHubState]:
    """Serve a GitHub API on 127.0.0.1 in a thread; ``state.url`` is its base URL."""
    state = state or GitHubState()
    bound = type("Handler", (Handler,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), bound)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
