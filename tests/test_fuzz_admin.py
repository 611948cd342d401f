"""The admin API against its own OpenAPI document (schemathesis): every operation, generated
valid and invalid requests, sent without a token and with a live admin token; no answer is a
server error and every answer is what the document declares (RFC 7807 problems included)."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, status_code_conformance
from starlette.types import Receive, Scope, Send

from authsvc.admin.app import ADMIN_ROUTES
from authsvc.app import create_app
from authsvc.clock import SystemClock
from authsvc.runtime import Services
from tests.support import make_settings

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance]
MAX_EXAMPLES = 25 if os.environ.get("CI") else 10
OPERATIONS = [(method, path) for path, ops in ADMIN_ROUTES.items() for method in ops]


async def _admin_token(tmp_path: Path) -> str:
    services = await Services.start(make_settings(tmp_path), SystemClock(), bootstrap_keys=True)
    try:
        await services.users.add(
            "root",
            await services.hasher.hash("root password"),
            services.clock.now(),
            username_key="root",
            scopes=frozenset({"authsvc:admin"}),
        )
        for name in ("alice", "bob"):
            await services.users.add(name, "x", services.clock.now(), username_key=name)
        user = await services.users.by_username("root")
        assert user is not None
        login = await services.families.start(user, services.clients.default, frozenset({"authsvc:admin"}))
        return f"Bearer {json.loads(login.body)['access_token']}"
    finally:
        await services.close()


@pytest.fixture
def admin_app(tmp_path: Path) -> tuple[Any, str]:
    token = asyncio.run(_admin_token(tmp_path))
    public = create_app(make_settings(tmp_path))

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        # The public app's lifespan builds the services; every request goes to the admin app.
        if scope["type"] == "lifespan":
            await public(scope, receive, send)
        else:
            await public.admin(scope, receive, send)

    return app, token


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_every_admin_operation_conforms_and_never_fails(
    admin_app: tuple[Any, str], method: str, path: str
) -> None:
    app, token = admin_app
    api = schemathesis.openapi.from_asgi("/admin/openapi.json", app)
    operation = api[path][method]

    @given(
        case=st.one_of(
            operation.as_strategy(schemathesis.GenerationMode.POSITIVE),
            operation.as_strategy(schemathesis.GenerationMode.NEGATIVE),
        )
    )
    @settings(
        max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    def run(case: Any) -> None:
        case.call_and_validate(checks=CHECKS)
        case.call_and_validate(checks=CHECKS, headers={"Authorization": token})

    run()
