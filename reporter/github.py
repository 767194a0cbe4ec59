"""Minimal GitHub REST client for issue comments: base URL from GITHUB_API_URL, bounded retries, pagination.

The token lives only in the request auth hook: it never appears in repr(), exceptions or log lines.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Mapping
from urllib.parse import quote, urlsplit

import requests

DEFAULT_API_URL = "https://api.github.com"  # GitHub's own API; GHES sets GITHUB_API_URL
USER_AGENT = "pg-ext-memcheck"
READ_ONLY_MESSAGE = "Resource not accessible by integration"


class GitHubError(Exception):
    """An API call that failed for good. Carries the status and GitHub's message, never the token."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ReadOnlyToken(GitHubError):
    """The token may read but not write (fork and Dependabot pull requests)."""


class NotFound(GitHubError):
    pass


class BodyTooLong(GitHubError):
    pass


@dataclass
class RetryPolicy:
    max_attempts: int = 5
    max_total_sleep: float = 120.0
    backoff: float = 2.0  # first 5xx retry waits this long, doubling
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)  # injectable: tests do not wait
    clock: Callable[[], float] = field(default=time.time, repr=False)


class _TokenAuth(requests.auth.AuthBase):
    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self._token}"
        return r

    def __repr__(self) -> str:
        return "_TokenAuth(***)"


def _message(resp: requests.Response) -> str:
    try:
        data = resp.json()
    except ValueError:
        data = None
    msg = str(data.get("message") or "") if isinstance(data, dict) else ""
    errors = data.get("errors") if isinstance(data, dict) else None
    if isinstance(errors, list):  # 422 details, e.g. "body is too long (maximum is 65536 characters)"
        details = [str(e.get("message")) for e in errors if isinstance(e, dict) and e.get("message")]
        if details:
            msg = f"{msg}: {'; '.join(details)}"
    return (msg or str(resp.reason or ""))[:300]


class GitHubClient:
    def __init__(
        self,
        token: str,
        repository: str,
        api_url: str | None = None,
        retry: RetryPolicy | None = None,
        session: requests.Session | None = None,
        timeout: float = 30.0,
    ) -> None:
        if not token:
            raise GitHubError("no GitHub token")
        if repository.count("/") != 1 or not all(repository.split("/")):
            raise GitHubError(f"GITHUB_REPOSITORY must be owner/name, got {repository!r}")
        self.api_url = (api_url or DEFAULT_API_URL).rstrip("/")
        self.repository = repository
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self._session = session or requests.Session()
        self._session.auth = _TokenAuth(token)
        self._session.headers.update({
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
            "User-Agent": USER_AGENT,
        })

    @classmethod
    def from_env(cls, env: Mapping[str, str], retry: RetryPolicy | None = None) -> GitHubClient:
        return cls(env.get("GITHUB_TOKEN", ""), env.get("GITHUB_REPOSITORY", ""),
                   env.get("GITHUB_API_URL") or None, retry)

    def __repr__(self) -> str:
        return f"GitHubClient(api_url={self.api_url!r}, repository={self.repository!r}, token=***)"

    # ---- transport ----

    def _wait_for(self, resp: requests.Response) -> float | None:
        """Seconds to wait before retrying this answer, or None when it is final."""
        if resp.status_code >= 500:
            return -1.0  # exponential backoff, decided by the caller
        if resp.status_code in (403, 429):
            retry_after = resp.headers.get("Retry-After")
            if retry_after is not None:
                try:
                    return max(0.0, float(retry_after))
                except ValueError:
                    return 60.0
            if resp.headers.get("x-ratelimit-remaining") == "0":
                try:
                    reset = float(resp.headers.get("x-ratelimit-reset", "0"))
                except ValueError:
                    reset = 0.0
                return max(0.0, reset - self.retry.clock()) + 1.0
            if resp.status_code == 429:
                return 60.0
        return None

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        if not url.startswith("http"):
            url = f"{self.api_url}{url}"
        elif urlsplit(url).netloc != urlsplit(self.api_url).netloc:
            # The auth hook would send the token there: follow links only on the API host.
            raise GitHubError(f"refusing to follow a link to another host: {urlsplit(url).netloc}")
        slept = 0.0
        backoff = self.retry.backoff
        for attempt in range(1, self.retry.max_attempts + 1):
            try:
                resp = self._session.request(method, url, timeout=self.timeout, **kwargs)
            except requests.RequestException as exc:
                # str(exc) may hold the URL but never headers; keep only the exception class to be safe.
                if attempt == self.retry.max_attempts or slept + backoff > self.retry.max_total_sleep:
                    raise GitHubError(f"{method} {urlsplit(url).path}: {type(exc).__name__}") from None
                self.retry.sleep(backoff)
                slept += backoff
                backoff *= 2
                continue
            if resp.status_code < 400:
                return resp
            wait = self._wait_for(resp)
            if wait is not None and attempt < self.retry.max_attempts:
                delay = backoff if wait < 0 else wait
                if slept + delay <= self.retry.max_total_sleep:
                    self.retry.sleep(delay)
                    slept += delay
                    if wait < 0:
                        backoff *= 2
                    continue
            raise self._error(method, url, resp)
        raise GitHubError(f"{method} {urlsplit(url).path}: retries exhausted")  # unreachable in practice

    @staticmethod
    def _error(method: str, url: str, resp: requests.Response) -> GitHubError:
        msg = _message(resp)
        text = f"{method} {urlsplit(url).path}: HTTP {resp.status_code}: {msg}"
        if resp.status_code == 403 and READ_ONLY_MESSAGE.lower() in msg.lower():
            return ReadOnlyToken(text, resp.status_code)
        if resp.status_code == 404:
            return NotFound(text, resp.status_code)
        if resp.status_code == 422 and "too long" in msg.lower():
            return BodyTooLong(text, resp.status_code)
        return GitHubError(text, resp.status_code)

    def paginate(self, path: str, params: Dict[str, Any] | None = None) -> Iterator[Dict[str, Any]]:
        url: str | None = path
        query: Dict[str, Any] | None = {"per_page": 100, **(params or {})}
        while url:
            resp = self.request("GET", url, params=query)
            page = resp.json()
            if not isinstance(page, list):
                raise GitHubError(f"GET {urlsplit(url).path}: expected a list")
            yield from page
            url = resp.links.get("next", {}).get("url")
            query = None  # the next link carries its own query string

    # ---- issue comments (pull-request conversation) ----

    def _repo(self) -> str:
        return f"/repos/{self.repository}"

    def list_comments(self, number: int) -> List[Dict[str, Any]]:
        return list(self.paginate(f"{self._repo()}/issues/{int(number)}/comments"))

    def create_comment(self, number: int, body: str) -> Dict[str, Any]:
        url = f"{self._repo()}/issues/{int(number)}/comments"
        return self.request("POST", url, json={"body": body}).json()

    def update_comment(self, comment_id: int, body: str) -> Dict[str, Any]:
        url = f"{self._repo()}/issues/comments/{int(comment_id)}"
        return self.request("PATCH", url, json={"body": body}).json()

    def delete_comment(self, comment_id: int) -> None:
        self.request("DELETE", f"{self._repo()}/issues/comments/{int(comment_id)}")

    # ---- who we are, and pull requests ----

    def get_user(self) -> Dict[str, Any]:
        """The token's user (personal access tokens); GitHub answers 403 for installation tokens."""
        return self._object("GET", "/user")

    def get_app(self, slug: str) -> Dict[str, Any]:
        """A GitHub App's public description (readable with any token), e.g. 'github-actions'."""
        return self._object("GET", f"/apps/{quote(slug, safe='')}")

    def get_pull(self, number: int) -> Dict[str, Any]:
        return self._object("GET", f"{self._repo()}/pulls/{int(number)}")

    def list_pulls(self, head: str, state: str = "open") -> List[Dict[str, Any]]:
        """Pull requests whose head is `owner:branch` (how a fork's pull request is found)."""
        return list(self.paginate(f"{self._repo()}/pulls", {"head": head, "state": state}))

    def _object(self, method: str, path: str) -> Dict[str, Any]:
        try:
            data = self.request(method, path).json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise GitHubError(f"{method} {path}: expected an object")
        return data
