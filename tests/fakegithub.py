"""A local HTTP server that answers like GitHub's REST API for issue comments (reusable by action tests).

Start it with a state (existing comments, PR numbers, token, write permission, queued failures), point
GITHUB_API_URL at `server.url`, and inspect `server.state.requests` afterwards.

Behaviour copied from GitHub: pagination (per_page <= 100, `Link` with rel="next"/"last", absolute URLs),
201 on create, 200 on update, 204 on delete, 401 for a wrong token, 403 "Resource not accessible by
integration" for a read-only token, 404 for an unknown PR or comment, 422 "Body is too long" over 65,536
characters, and scripted 5xx / rate-limit answers.

Who the token is: an installation token (GITHUB_TOKEN, the default) gets 403 "Resource not accessible by
integration" from GET /user, and its comments are written by the app's bot user (`github-actions[bot]`);
a personal access token (`installation_token=False`) gets its user from GET /user and writes as that user.
GET /apps/{slug} describes a public app. Pull requests (`add_pull`) answer GET /repos/{repo}/pulls/{n} and
GET /repos/{repo}/pulls?head=owner:branch&state=open|closed|all, with head.sha, head.ref and head.repo.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Set
from urllib.parse import parse_qs, urlsplit

MAX_BODY = 65_536


@dataclass
class Recorded:
    method: str
    path: str
    query: Dict[str, List[str]]
    headers: Dict[str, str]
    body: Dict[str, Any] | None


@dataclass
class Scripted:
    """One canned answer, consumed by the next request matching `method` (None: any)."""

    status: int
    headers: Dict[str, str] = field(default_factory=dict)
    body: Any = None
    method: str | None = None


@dataclass
class FakeState:
    repository: str = "acme/buggy_pg_ext"
    token: str = "ghs_faketoken"
    writable: bool = True
    prs: Set[int] = field(default_factory=lambda: {42})
    comments: Dict[int, List[Dict[str, Any]]] = field(default_factory=dict)  # pr -> comments, oldest first
    scripted: List[Scripted] = field(default_factory=list)
    # Called after a successful create, with (state, pr): lets a test simulate a racing publisher.
    after_create: Callable[[FakeState, int], None] | None = None
    requests: List[Recorded] = field(default_factory=list)
    next_id: int = 1000
    tick: int = 0  # fake clock for created_at: strictly increasing, deterministic
    installation_token: bool = True  # GITHUB_TOKEN or an app's token; False: a personal access token
    app_slug: str = "github-actions"  # whose bot an installation token writes as
    user_login: str = "octocat"  # who a personal access token is
    apps: Dict[str, int] = field(default_factory=lambda: {"github-actions": 15368, "dependabot": 29110})
    pulls: Dict[int, Dict[str, Any]] = field(default_factory=dict)  # number -> pull request object

    @property
    def actor(self) -> str:
        """The login the token writes comments as."""
        return f"{self.app_slug}[bot]" if self.installation_token else self.user_login

    def add_comment(self, pr: int, body: str, login: str = "github-actions[bot]") -> Dict[str, Any]:
        self.next_id += 1
        self.tick += 1
        stamp = f"2026-11-24T10:{self.tick // 60:02d}:{self.tick % 60:02d}Z"
        comment = {
            "id": self.next_id, "body": body, "created_at": stamp, "updated_at": stamp,
            "html_url": f"https://github.example/{self.repository}/pull/{pr}#issuecomment-{self.next_id}",
            "user": {"login": login, "type": "Bot" if login.endswith("[bot]") else "User"},
        }
        self.comments.setdefault(pr, []).append(comment)
        return comment

    def add_pull(self, number: int, head_sha: str, head_ref: str = "feature",
                 head_repo: str | None = None, state: str = "open") -> Dict[str, Any]:
        """A pull request (also an issue that takes comments); head_repo defaults to this repository."""
        full_name = head_repo or self.repository
        owner = full_name.split("/")[0]
        pull = {
            "number": number, "state": state,
            "html_url": f"https://github.example/{self.repository}/pull/{number}",
            "head": {"sha": head_sha, "ref": head_ref, "label": f"{owner}:{head_ref}",
                     "repo": {"full_name": full_name, "owner": {"login": owner}}},
            "base": {"ref": "main", "repo": {"full_name": self.repository}},
        }
        self.pulls[number] = pull
        self.prs.add(number)
        return pull

    def find(self, comment_id: int) -> Dict[str, Any] | None:
        for comments in self.comments.values():
            for c in comments:
                if c["id"] == comment_id:
                    return c
        return None

    def all_bodies(self, pr: int) -> List[str]:
        return [c["body"] for c in self.comments.get(pr, [])]


class _Handler(BaseHTTPRequestHandler):
    server: FakeGitHub  # type: ignore[assignment]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep test output quiet
        return

    def _send(self, status: int, body: Any = None, headers: Dict[str, str] | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if data:
            self.wfile.write(data)

    def _handle(self) -> None:
        st = self.server.state
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        with self.server.lock:
            st.requests.append(Recorded(self.command, parts.path, parse_qs(parts.query),
                                        {k: v for k, v in self.headers.items()}, body))
            for i, s in enumerate(st.scripted):
                if s.method in (None, self.command):
                    st.scripted.pop(i)
                    self._send(s.status, s.body if s.body is not None else {"message": "scripted"}, s.headers)
                    return
            if self.headers.get("Authorization") not in (f"Bearer {st.token}", f"token {st.token}"):
                self._send(401, {"message": "Bad credentials"})
                return
            path = parts.path
            prefix = self.server.prefix
            if self.command == "GET" and path == prefix + "/user":
                self._user(st)
                return
            if self.command == "GET" and path.startswith(prefix + "/apps/"):
                self._app(st, path[len(prefix + "/apps/"):])
                return
            if not path.startswith(prefix + f"/repos/{st.repository}/"):
                self._send(404, {"message": "Not Found"})
                return
            rest = path[len(prefix + f"/repos/{st.repository}"):]
            self._route(st, rest, parse_qs(parts.query), body)

    def _route(self, st: FakeState, rest: str, query: Dict[str, List[str]], body: Any) -> None:
        if self.command == "GET" and rest == "/pulls":
            self._pulls(st, query)
            return
        m = re.fullmatch(r"/pulls/(\d+)", rest)
        if m and self.command == "GET":
            pull = st.pulls.get(int(m.group(1)))
            self._send(200, pull) if pull else self._send(404, {"message": "Not Found"})
            return
        m = re.fullmatch(r"/issues/(\d+)/comments", rest)
        if m:
            pr = int(m.group(1))
            if pr not in st.prs:
                self._send(404, {"message": "Not Found"})
            elif self.command == "GET":
                self._list(st, pr, query)
            elif self.command == "POST":
                self._create(st, pr, body)
            else:
                self._send(405, {"message": "Method not allowed"})
            return
        m = re.fullmatch(r"/issues/comments/(\d+)", rest)
        if m:
            comment = st.find(int(m.group(1)))
            if comment is None:
                self._send(404, {"message": "Not Found"})
            elif not st.writable:
                self._send(403, {"message": "Resource not accessible by integration"})
            elif self.command == "PATCH":
                if not self._body_ok(body):
                    return
                st.tick += 1
                comment["body"] = body["body"]
                comment["updated_at"] = f"2026-11-24T11:{st.tick // 60:02d}:{st.tick % 60:02d}Z"
                self._send(200, comment)
            elif self.command == "DELETE":
                for comments in st.comments.values():
                    if comment in comments:
                        comments.remove(comment)
                self._send(204)
            else:
                self._send(405, {"message": "Method not allowed"})
            return
        self._send(404, {"message": "Not Found"})

    def _body_ok(self, body: Any) -> bool:
        if not isinstance(body, dict) or not isinstance(body.get("body"), str):
            self._send(422, {"message": "Validation Failed"})
            return False
        if len(body["body"]) > MAX_BODY:
            self._send(422, {"message": "Validation Failed",
                             "errors": [{"resource": "IssueComment", "code": "custom", "field": "body",
                                         "message": "body is too long (maximum is 65536 characters)"}]})
            return False
        return True

    def _list(self, st: FakeState, pr: int, query: Dict[str, List[str]]) -> None:
        per_page = min(100, int((query.get("per_page") or ["30"])[0]))
        page = max(1, int((query.get("page") or ["1"])[0]))
        comments = st.comments.get(pr, [])
        chunk = comments[(page - 1) * per_page: page * per_page]
        last = max(1, -(-len(comments) // per_page))
        base = f"{self.server.url}/repos/{st.repository}/issues/{pr}/comments"
        links = []
        if page < last:
            links.append(f'<{base}?per_page={per_page}&page={page + 1}>; rel="next"')
            links.append(f'<{base}?per_page={per_page}&page={last}>; rel="last"')
        if page > 1:
            links.append(f'<{base}?per_page={per_page}&page={page - 1}>; rel="prev"')
        self._send(200, chunk, {"Link": ", ".join(links)} if links else None)

    def _user(self, st: FakeState) -> None:
        if st.installation_token:
            self._send(403, {"message": "Resource not accessible by integration",
                             "documentation_url": "https://docs.github.com/rest/users/users#get-the-authenticated-user",
                             "status": "403"})
        else:
            self._send(200, {"login": st.user_login, "id": 583231, "type": "User"})

    def _app(self, st: FakeState, slug: str) -> None:
        if slug in st.apps:
            self._send(200, {"id": st.apps[slug], "slug": slug, "name": slug.replace("-", " ").title(),
                             "owner": {"login": "github", "type": "Organization"}})
        else:
            self._send(404, {"message": "Not Found"})

    def _pulls(self, st: FakeState, query: Dict[str, List[str]]) -> None:
        state = (query.get("state") or ["open"])[0]
        head = (query.get("head") or [""])[0]
        found = [p for _, p in sorted(st.pulls.items())
                 if (state == "all" or p["state"] == state) and (not head or p["head"]["label"] == head)]
        self._send(200, found[:100])

    def _create(self, st: FakeState, pr: int, body: Any) -> None:
        if not st.writable:
            self._send(403, {"message": "Resource not accessible by integration",
                             "documentation_url": "https://docs.github.com/rest"})
            return
        if not self._body_ok(body):
            return
        comment = st.add_comment(pr, body["body"], login=st.actor)
        self._send(201, comment)
        if st.after_create is not None:
            hook, st.after_create = st.after_create, None
            hook(st, pr)

    do_GET = do_POST = do_PATCH = do_DELETE = _handle


class FakeGitHub(ThreadingHTTPServer):
    """`with FakeGitHub(FakeState(...)) as gh:` serves on 127.0.0.1 at a random port in a thread."""

    daemon_threads = True

    def __init__(self, state: FakeState | None = None, prefix: str = "") -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state or FakeState()
        self.prefix = prefix  # e.g. "/api/v3" to look like GitHub Enterprise Server
        self.lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{self.prefix}"

    def __enter__(self) -> FakeGitHub:
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
