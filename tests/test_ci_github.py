"""``shipyard ci``: the sticky plan comment and the drift issue, against a loopback GitHub API.

The server (tests/github_api.py) answers GitHub's calls with GitHub's shapes, paginates with ``Link``
headers and fails on demand; waits (backoff, rate limits) go to a fake sleep. Nothing reaches the network.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import Result, commit, edit, git, whole_template
from github_api import GitHubState, github_api
from shipyard.core.owners import Review
from shipyard.core.plan import make_plan
from shipyard.core.render.drift import render_drift_markdown
from shipyard.core.render.markdown import GITHUB_COMMENT_LIMIT, render_markdown
from shipyard.core.render.owners import render_owners_markdown
from shipyard.engine.github import GitHub, upsert_comment
from shipyard.sdk.errors import UserError
from shipyard.sdk.model import Resource

Run = Callable[..., Result]
NOW = 1_780_000_000.0  # the fake clock: 2026-05-28 20:26:40 UTC
PLAN = "<!-- shipyard-plan -->"


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[GitHubState]:
    """A loopback GitHub with pull request #7, and the workflow's environment pointing at it."""
    import shipyard.cli.ci as ci

    with github_api() as state:
        state.add_pull(7)
        monkeypatch.setenv("GITHUB_TOKEN", state.token)
        monkeypatch.setenv("GITHUB_REPOSITORY", state.repository)
        monkeypatch.setenv("GITHUB_API_URL", state.url)
        monkeypatch.setattr(ci, "SLEEP", state.slept.append)
        monkeypatch.setattr(ci, "CLOCK", lambda: NOW)
        yield state


def files(where: Path, **texts: str) -> list[str]:
    """Body files, as --body-file arguments."""
    args = []
    for name, text in texts.items():
        path = where / f"{name}.md"
        path.write_text(text)
        args += ["--body-file", str(path)]
    return args


def post(shipyard: Run, where: Path, *extra: str, pr: int = 7, **texts: str) -> Result:
    pieces = texts or {"plan": "### Shipyard plan\n\nNo changes.\n"}
    return shipyard(
        "ci",
        "comment",
        "--pr",
        str(pr),
        "--marker",
        "shipyard-plan",
        "--commit",
        "abc123",
        *files(where, **pieces),
        *extra,
    )


# -- the pull request's comment, end to end ----------------------------------------------------------------


def test_a_pull_requests_plan_and_owners_become_one_comment_updated_on_every_push(
    tmp_path: Path, shipyard: Run, api: GitHubState
) -> None:
    root = whole_template(tmp_path)
    commit(root, "the template")
    edit(root, "features/fraud/features.py", "ttl=timedelta(days=2)", "ttl=timedelta(days=3)")
    edit(root, "pipelines/fraud/train/pipeline.yaml", "max_iter: 200", "max_iter: 300")
    edit(root, "models/fraud/fraud-scorer.yaml", "max: 4", "max: 6")
    commit(root, "a feature, a pipeline and a model")

    def push() -> tuple[Result, str]:
        plan = shipyard(
            "plan", "--target", "base:HEAD~1", "--format", "markdown", "--out", str(tmp_path / "plan.json"), repo=root
        )
        assert plan.code in (0, 1), plan.err  # 1: a mandatory finding, which the comment is there to show
        assert plan.out.startswith("<!-- shipyard-plan:base:HEAD~1 -->"), plan.err
        (tmp_path / "plan.md").write_text(plan.out)
        owners = shipyard("owners", "--changed", "HEAD~1", "--format", "markdown", repo=root)
        assert owners.code == 0, owners.err
        (tmp_path / "owners.md").write_text(owners.out)
        pieces = ["--body-file", str(tmp_path / "plan.md"), "--body-file", str(tmp_path / "owners.md")]
        result = shipyard("ci", "comment", "--pr", "7", "--marker", "shipyard-plan", *pieces, repo=root)
        return result, plan.out

    first, plan = push()
    assert first.code == 0, first.err
    assert re.match(r"comment \d+ on pull request #7 created: https://github.com/acme/platform/pull/7#", first.out)
    [made] = api.comments_on(7)
    body = made["body"]
    assert body.splitlines()[0] == PLAN
    assert '~ ttl: "172800s" -> "259200s"' in body  # the feature
    assert "~ values.max_iter: 200 -> 300" in body  # the pipeline
    assert "~ spec.predictor.maxReplicas: 4 -> 6" in body  # the model
    assert "#### Policy and validation findings" in body
    assert "`SY-WRK-004`" in body
    assert "| Review needed from | Files |" in body
    assert "@fraud-ml-leads" in body
    assert re.search(r"Hash `([0-9a-f]{12})`", plan)[0] in body  # type: ignore[index]
    head = git(root, "rev-parse", "HEAD").strip()
    assert body.rstrip().endswith(f"<sub>commit `{head}`</sub>")

    edit(root, "models/fraud/fraud-scorer.yaml", "max: 6", "max: 8")
    commit(root, "another push")
    second, plan = push()
    assert second.code == 0, second.err
    assert f"comment {made['id']} on pull request #7 updated" in second.out
    [again] = api.comments_on(7)
    assert again["id"] == made["id"]
    assert "~ spec.predictor.maxReplicas: 6 -> 8" in again["body"]
    assert git(root, "rev-parse", "HEAD").strip() in again["body"]
    assert [m for m, _ in api.writes()] == ["POST", "PATCH"]


def test_a_10000_change_plan_and_its_owners_fit_in_one_comment(tmp_path: Path, shipyard: Run, api: GitHubState) -> None:
    desired = [
        Resource("models", "InferenceService", f"team-{i:05}", f"model-{i}", {"spec": {"v": i, "pad": "x" * 40}})
        for i in range(10_000)
    ]
    plan = make_plan("base:main", desired, [], {"models": (50, {})})
    markdown = render_markdown(plan, footer="reused 0 of 500 units; computed: models/team-00000 and 499 more")
    owners = render_owners_markdown(
        ".github/CODEOWNERS",
        [
            Review(
                (f"@acme/team-{i}", "@acme/platform"), (20 + i,), tuple(f"models/team-{i}/m{n}.yaml" for n in range(12))
            )
            for i in range(10)
        ],
    )
    result = post(shipyard, tmp_path, "--commit", "f" * 40, plan=markdown, owners=owners)
    assert result.code == 0, result.err
    [made] = api.comments_on(7)
    assert len(made["body"]) <= GITHUB_COMMENT_LIMIT
    assert "10000 to create" in made["body"]
    assert "- ... and " in made["body"]  # the plan cut itself, and said so
    assert made["body"].rstrip().endswith(f"<sub>commit `{'f' * 40}`</sub>")


def test_a_body_over_githubs_limit_is_refused_before_any_call(tmp_path: Path, shipyard: Run, api: GitHubState) -> None:
    result = post(shipyard, tmp_path, plan="x" * 70_000)
    assert result.code == 1
    assert "GitHub takes at most 65,536" in result.err
    assert "nothing was sent" in result.err
    assert api.calls == []


# -- finding the comment ---------------------------------------------------------------------------------


def test_the_marker_is_found_on_a_later_page_and_that_comment_is_updated(
    tmp_path: Path, shipyard: Run, api: GitHubState
) -> None:
    api.page_size = 2
    for n in range(5):
        api.add_comment(7, f"LGTM {n}")
    ours = api.add_comment(7, f"{PLAN}\nold plan", login="github-actions[bot]")
    api.add_comment(7, "<!-- shipyard-plan:base:main -->\nnot ours: another marker")
    api.add_comment(7, f"quoting it: {PLAN}")
    result = post(shipyard, tmp_path)
    assert result.code == 0, result.err
    assert f"comment {ours['id']} on pull request #7 updated" in result.out
    assert len(api.comments_on(7)) == 8
    assert [c for c in api.comments_on(7) if c["body"].startswith(PLAN)] == [ours]
    assert api.calls.count(("GET", "/repos/acme/platform/issues/7/comments")) == 4  # 8 comments, 2 a page
    assert api.writes() == [("PATCH", f"/repos/acme/platform/issues/comments/{ours['id']}")]
    assert ours["body"].endswith("No changes.\n\n<sub>commit `abc123`</sub>\n")


def test_an_identical_body_is_not_written_again(tmp_path: Path, shipyard: Run, api: GitHubState) -> None:
    assert post(shipyard, tmp_path).code == 0
    again = post(shipyard, tmp_path)
    assert again.code == 0
    assert "left unchanged" in again.out
    assert [m for m, _ in api.writes()] == ["POST"]


def test_a_marker_found_twice_is_an_error_and_nothing_changes(tmp_path: Path, shipyard: Run, api: GitHubState) -> None:
    one, two = api.add_comment(7, f"{PLAN}\none"), api.add_comment(7, f"{PLAN}\r\ntwo")
    result = post(shipyard, tmp_path)
    assert result.code == 1
    assert f"pull request #7 has 2 comments starting with {PLAN}" in result.err
    assert str(one["id"]) in result.err
    assert two["html_url"] in result.err
    assert "nothing was changed" in result.err
    assert "hint: delete all but one" in result.err
    assert api.writes() == []
    assert [c["body"] for c in api.comments_on(7)] == [f"{PLAN}\none", f"{PLAN}\r\ntwo"]


def test_the_requests_carry_githubs_headers(tmp_path: Path, shipyard: Run, api: GitHubState) -> None:
    assert post(shipyard, tmp_path).code == 0
    for headers in api.headers:
        assert headers["authorization"] == f"Bearer {api.token}"
        assert headers["accept"] == "application/vnd.github+json"
        assert headers["x-github-api-version"] == "2022-11-28"
        assert headers["user-agent"].startswith("shipyard")


# -- errors ----------------------------------------------------------------------------------------------

VALIDATION = [{"resource": "IssueComment", "code": "custom", "field": "body", "message": "body is spam"}]


@pytest.mark.parametrize(
    ("status", "on", "expected", "hint"),
    [
        (401, "GET", "GET /repos/acme/platform/issues/7/comments answered 401 Bad credentials", "GITHUB_TOKEN"),
        (
            403,
            "GET",
            "answered 403 Resource not accessible by integration; nothing was changed",
            "pull-requests: write",
        ),
        (404, "GET", "answered 404 Not Found; nothing was changed", "GITHUB_REPOSITORY"),
        (
            422,
            "write",
            "POST /repos/acme/platform/issues/7/comments answered 422 Validation Failed: body is spam; "
            "GitHub refused it, so this call changed nothing",
            "refused the content",
        ),
        (502, "GET", "answered 502 Server Error; nothing was changed", "run the job again later"),
        (502, "write", "answered 502 Server Error; GitHub may or may not have applied this write", "again later"),
    ],
)
def test_each_github_error_is_named_with_its_call_and_changes_nothing(
    tmp_path: Path, shipyard: Run, api: GitHubState, status: int, on: str, expected: str, hint: str
) -> None:
    api.add_comment(7, "LGTM")
    tries = 4 if status >= 500 else 1  # a 5xx is tried four times
    api.fail(tries, status, errors=VALIDATION if status == 422 else None, on=on)
    result = post(shipyard, tmp_path)
    assert result.code == 1, result.err
    assert expected in result.err, result.err
    assert "hint: " in result.err
    assert hint in result.err
    assert result.err.count("\n") == 2  # one line, and its hint
    assert [c["body"] for c in api.comments_on(7)] == ["LGTM"]
    assert api.slept == ([1.0, 2.0, 4.0] if status >= 500 else [])


def test_a_wrong_token_is_refused_by_the_server(
    tmp_path: Path, shipyard: Run, api: GitHubState, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_wrong")
    result = post(shipyard, tmp_path)
    assert result.code == 1
    assert "answered 401 Bad credentials" in result.err
    assert api.comments_on(7) == []


def test_a_pull_request_that_does_not_exist_is_a_404(tmp_path: Path, shipyard: Run, api: GitHubState) -> None:
    result = post(shipyard, tmp_path, pr=8)
    assert result.code == 1
    assert "GET /repos/acme/platform/issues/8/comments answered 404 Not Found" in result.err


def test_a_5xx_is_tried_again_and_then_the_one_comment_is_made(tmp_path: Path, shipyard: Run, api: GitHubState) -> None:
    api.fail(2, 503)
    result = post(shipyard, tmp_path)
    assert result.code == 0, result.err
    assert len(api.comments_on(7)) == 1
    assert api.slept == [1.0, 2.0]


def test_a_post_that_fails_is_looked_for_again_before_posting_again(
    tmp_path: Path, shipyard: Run, api: GitHubState
) -> None:
    """A 502 on the POST may hide a comment GitHub made: the listing is read again, and only then posted."""
    api.fail(1, 502, on="POST")
    result = post(shipyard, tmp_path)
    assert result.code == 0, result.err
    assert len(api.comments_on(7)) == 1
    assert [m for m, _ in api.calls] == ["GET", "POST", "GET", "POST"]


def test_a_comment_github_made_before_failing_is_not_made_twice(
    tmp_path: Path, shipyard: Run, api: GitHubState
) -> None:
    api.fail(1, 502, on="POST", applied=True)
    result = post(shipyard, tmp_path)
    assert result.code == 0, result.err
    assert "left unchanged" in result.out
    assert len(api.comments_on(7)) == 1
    assert [m for m, _ in api.calls] == ["GET", "POST", "GET"]


def test_a_drift_issue_github_opened_before_failing_is_not_opened_twice(
    tmp_path: Path, shipyard: Run, api: GitHubState
) -> None:
    api.fail(1, 502, on="POST", applied=True)
    result = drift(shipyard, tmp_path, 2, drift_report(5))
    assert result.code == 0, result.err
    assert "drift issue #8 of prod unchanged" in result.out
    assert [n for n, i in api.issues.items() if "pull_request" not in i] == [8]


def test_a_short_rate_limit_is_waited_out(tmp_path: Path, shipyard: Run, api: GitHubState) -> None:
    api.fail(1, 403, "API rate limit exceeded", {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 30)})
    api.fail(1, 403, "You have exceeded a secondary rate limit", {"retry-after": "5"})
    result = post(shipyard, tmp_path)
    assert result.code == 0, result.err
    assert api.slept == [30.0, 5.0]
    assert len(api.comments_on(7)) == 1


def test_a_long_rate_limit_fails_naming_when_it_resets(tmp_path: Path, shipyard: Run, api: GitHubState) -> None:
    reset = int(NOW) + 3600
    api.fail(1, 403, "API rate limit exceeded", {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)})
    result = post(shipyard, tmp_path)
    assert result.code == 1
    assert "was rate limited until 2026-05-28 21:26:40 UTC (API rate limit exceeded)" in result.err
    assert api.slept == []
    assert api.comments_on(7) == []


def test_the_environment_is_checked_first(
    tmp_path: Path, shipyard: Run, api: GitHubState, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITHUB_TOKEN")
    result = post(shipyard, tmp_path)
    assert result.code == 1
    assert "GITHUB_TOKEN is not set" in result.err
    monkeypatch.setenv("GITHUB_TOKEN", api.token)
    monkeypatch.delenv("GITHUB_REPOSITORY")
    result = post(shipyard, tmp_path)
    assert result.code == 1
    assert "GITHUB_REPOSITORY is not set" in result.err
    assert "--repository" in result.err
    assert post(shipyard, tmp_path, "--repository", "acme/platform").code == 0
    assert post(shipyard, tmp_path, "--repository", "acme").code == 1
    bad = shipyard("ci", "comment", "--pr", "7", "--marker", "a -->", *files(tmp_path, p="x"))
    assert bad.code == 1
    assert "cannot be an HTML comment's name" in bad.err
    assert len(api.comments_on(7)) == 1


def test_a_next_page_on_another_host_is_not_followed() -> None:
    with github_api() as state:
        state.add_pull(7)
        state.page_size = 1
        for n in range(3):
            state.add_comment(7, f"c{n}")
        client = GitHub(state.token, state.repository, state.url, sleep=lambda seconds: None)
        state.url = "http://elsewhere.invalid"  # where its Link headers now point: the token must not go there
        with pytest.raises(UserError, match=r"pointed its next page at another host \(http://elsewhere.invalid/"):
            upsert_comment(client, 7, PLAN, f"{PLAN}\nx")
        assert state.calls == [("GET", "/repos/acme/platform/issues/7/comments")]


# -- the drift issue -------------------------------------------------------------------------------------


def drift_report(replicas: int) -> str:
    before = Resource("models", "InferenceService", "fraud", "fraud-scorer", {"spec": {"replicas": 2}})
    after = Resource("models", "InferenceService", "fraud", "fraud-scorer", {"spec": {"replicas": replicas}})
    plan = make_plan("prod", [before], [after], {"models": (50, {})})
    return render_drift_markdown("prod", plan.pending, [])


def drift(shipyard: Run, where: Path, status: int, report: str | None = None, target: str = "prod") -> Result:
    args = ["ci", "drift-issue", "--target", target, "--status", str(status)]
    if report is not None:
        (where / "drift.md").write_text(report)
        args += ["--report", str(where / "drift.md")]
    return shipyard(*args)


def test_drift_opens_one_issue_updates_it_and_closes_it_when_clean(
    tmp_path: Path, shipyard: Run, api: GitHubState
) -> None:
    api.add_issue("Unrelated", "<!-- shipyard-drift:staging -->\n## Drift on `staging`")
    api.issues[7]["body"] = "<!-- shipyard-drift:prod -->\na pull request quoting the marker"

    first = drift(shipyard, tmp_path, 2, drift_report(5))
    assert first.code == 0, first.err
    assert re.match(r"drift issue #9 of prod created: https://github.com/acme/platform/issues/9", first.out)
    issue = api.issues[9]
    assert issue["title"] == "Drift in prod"
    assert issue["labels"] == [{"name": "drift"}]
    assert issue["body"].startswith("<!-- shipyard-drift:prod -->\n## Drift on `prod`")
    assert "`5`" in issue["body"]

    second = drift(shipyard, tmp_path, 2, drift_report(6))
    assert second.code == 0
    assert "drift issue #9 of prod updated" in second.out
    assert "`6`" in api.issues[9]["body"]
    assert issue["state"] == "open"

    third = drift(shipyard, tmp_path, 0, render_drift_markdown("prod", [], []))
    assert third.code == 0
    assert "drift issue #9 of prod closed" in third.out
    assert issue["state"] == "closed"
    assert issue["state_reason"] == "completed"
    [note] = api.comments_on(9)
    assert note["body"].startswith("No drift on `prod` at 2026-05-28 20:26:40 UTC")

    fourth = drift(shipyard, tmp_path, 0, render_drift_markdown("prod", [], []))
    assert fourth.code == 0
    assert "nothing to do" in fourth.out
    assert sorted(n for n, i in api.issues.items() if i["body"].startswith("<!-- shipyard-drift:prod")) == [7, 9]
    assert [m for m, _ in api.writes()] == ["POST", "PATCH", "POST", "PATCH"]
    assert api.issues[8]["state"] == "open"
    assert api.issues[7]["state"] == "open"


def test_drift_that_could_not_be_checked_changes_nothing(tmp_path: Path, shipyard: Run, api: GitHubState) -> None:
    api.add_issue("Drift in prod", drift_report(5))
    for status in (1, 3):
        result = drift(shipyard, tmp_path, status, "error: the target is unreachable\n")
        assert result.code == 1
        assert f"shipyard drift exited {status} for prod" in result.err
    assert api.calls == []


def test_two_open_drift_issues_are_an_error(tmp_path: Path, shipyard: Run, api: GitHubState) -> None:
    api.page_size = 1
    one, two = api.add_issue("Drift in prod", drift_report(5)), api.add_issue("Drift in prod", drift_report(6))
    for status in (0, 2):
        result = drift(shipyard, tmp_path, status, drift_report(7))
        assert result.code == 1
        assert "2 open issues start with <!-- shipyard-drift:prod -->" in result.err
        assert f"#{one['number']}" in result.err
        assert two["html_url"] in result.err
    assert api.writes() == []


def test_a_drift_report_of_another_environment_is_refused(tmp_path: Path, shipyard: Run, api: GitHubState) -> None:
    result = drift(shipyard, tmp_path, 2, drift_report(5), target="staging")
    assert result.code == 1
    assert "does not start with <!-- shipyard-drift:staging -->" in result.err
    missing = drift(shipyard, tmp_path, 2)
    assert missing.code == 1
    assert "needs --report" in missing.err
    assert api.calls == []


def test_a_failed_close_says_the_issue_is_still_open(tmp_path: Path, shipyard: Run, api: GitHubState) -> None:
    issue = api.add_issue("Drift in prod", drift_report(5))
    clean = render_drift_markdown("prod", [], [])
    api.fail(1, 403, on="POST")
    refused = drift(shipyard, tmp_path, 0, clean)
    assert refused.code == 1
    assert "POST /repos/acme/platform/issues/8/comments answered 403" in refused.err
    assert "GitHub refused it, so this call changed nothing" in refused.err
    assert issue["state"] == "open"
    assert api.comments_on(8) == []

    api.fail(4, 502, on="PATCH")
    failed = drift(shipyard, tmp_path, 0, clean)
    assert failed.code == 1
    assert "PATCH /repos/acme/platform/issues/8 answered 502" in failed.err
    assert "issue #8 got its 'no drift' comment but is still open" in failed.err
    assert issue["state"] == "open"
    assert len(api.comments_on(8)) == 1
    assert drift(shipyard, tmp_path, 0, clean).code == 0
    assert issue["state"] == "closed"
