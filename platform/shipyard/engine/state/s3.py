"""The state of a cloud environment in its S3 state bucket, with S3's conditional writes.

``create`` is ``PutObject`` with ``If-None-Match: *`` and ``replace``/``delete`` carry
``If-Match: <ETag>``: S3 itself refuses the loser of a race (412 or 409), as Terraform's S3
backend has done for its lock since 1.10. boto3 is imported only here, when a cloud target's
state is opened. Credentials and the endpoint come from boto3's usual chain (a profile, the
``AWS_*`` variables, a CI role); ``AWS_ENDPOINT_URL_S3`` points it at another S3 API.
"""

from __future__ import annotations

from typing import Any, NoReturn

from shipyard.engine.state.store import Stored
from shipyard.sdk.errors import MissingExtra, TargetUnavailable, TransientError, UserError

#: 412: the condition failed; 409: a concurrent conditional write to the same key won.
_LOST_RACE = {"PreconditionFailed", "ConditionalRequestConflict", "412", "409"}
_MISSING = {"NoSuchKey", "404", "NotFound"}


class S3Store:
    """Objects under ``s3://bucket/prefix/``."""

    def __init__(self, bucket: str, prefix: str, *, region: str | None = None, client: Any = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._client = client if client is not None else _client(region)

    def get(self, name: str) -> Stored | None:
        try:
            answer = self._call("get_object", name, Key=self._key(name))
        except _Missing:
            return None
        return Stored(answer["Body"].read(), answer["ETag"])

    def create(self, name: str, data: bytes) -> str | None:
        try:
            answer = self._call("put_object", name, Key=self._key(name), Body=data, IfNoneMatch="*")
        except _LostRace:
            return None
        tag: str = answer["ETag"]
        return tag

    def replace(self, name: str, data: bytes, tag: str) -> str | None:
        try:
            answer = self._call("put_object", name, Key=self._key(name), Body=data, IfMatch=tag)
        except (_LostRace, _Missing):
            return None
        new: str = answer["ETag"]
        return new

    def delete(self, name: str, tag: str) -> bool:
        try:
            self._call("delete_object", name, Key=self._key(name), IfMatch=tag)
        except (_LostRace, _Missing):
            return False
        return True

    def put(self, name: str, data: bytes) -> None:
        self._call("put_object", name, Key=self._key(name), Body=data)

    def names(self, prefix: str) -> list[str]:
        found: list[str] = []
        start = self._key(prefix)
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=start):
                found += [item["Key"].removeprefix(self._key("")) for item in page.get("Contents", [])]
        except Exception as error:
            _explain(error, self.where(prefix))
        return sorted(found)

    def where(self, name: str = "") -> str:
        return f"s3://{self.bucket}/{self._key(name)}"

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def _call(self, operation: str, name: str, **params: Any) -> Any:
        try:
            return getattr(self._client, operation)(Bucket=self.bucket, **params)
        except Exception as error:
            code = _code(error)
            if code in _LOST_RACE:
                raise _LostRace from error
            if code in _MISSING:
                raise _Missing from error
            _explain(error, self.where(name))


class _LostRace(Exception):
    pass


class _Missing(Exception):
    pass


def _client(region: str | None) -> Any:
    try:
        import boto3
        from botocore.config import Config
    except ModuleNotFoundError as error:
        raise MissingExtra("the S3 state backend needs boto3", "uv sync --extra state") from error
    config = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=30)
    return boto3.session.Session(region_name=region).client("s3", config=config)


def _code(error: Exception) -> str:
    response = getattr(error, "response", None)
    if not isinstance(response, dict):
        return ""
    return str(response.get("Error", {}).get("Code", "")) or str(
        response.get("ResponseMetadata", {}).get("HTTPStatusCode", "")
    )


def _explain(error: Exception, where: str) -> NoReturn:
    """A botocore failure as the error a user can act on."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
    )

    if isinstance(error, NoCredentialsError):
        raise TargetUnavailable(
            f"no AWS credentials to read the state at {where}",
            hint="set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; in GitHub Actions assume a role "
            "with aws-actions/configure-aws-credentials",
        ) from error
    if isinstance(error, NoRegionError):
        raise TargetUnavailable(
            f"no AWS region for the state at {where}",
            hint="set spec.state.region in the Environment spec, or AWS_REGION",
        ) from error
    if isinstance(error, EndpointConnectionError):
        raise TransientError(f"cannot reach S3 for {where}: {error}") from error
    code = _code(error)
    if code in {"NoSuchBucket"}:
        raise UserError(
            f"the state bucket of {where} does not exist",
            hint="create it with the infra plane (pulumi up), or fix spec.state.bucket in the Environment spec",
        ) from error
    if code in {"AccessDenied", "403", "AllAccessDisabled", "InvalidAccessKeyId", "SignatureDoesNotMatch"}:
        raise TargetUnavailable(
            f"not allowed to use the state at {where} ({code})",
            hint="the role needs s3:GetObject, s3:PutObject, s3:DeleteObject and s3:ListBucket on the state bucket",
        ) from error
    if code in {"SlowDown", "503", "500", "InternalError", "RequestTimeout"}:
        raise TransientError(f"S3 answered {code} for {where}") from error
    if isinstance(error, BotoCoreError | ClientError):
        raise TargetUnavailable(f"S3 refused {where}: {error}") from error
    raise error
