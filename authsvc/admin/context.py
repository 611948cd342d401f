"""What every admin handler works with: the running service's parts, the caller, the audit trail."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from authsvc.admin.guard import Admin, AdminGuard
from authsvc.api.responses import NO_STORE, json_response
from authsvc.events import AdminAction
from authsvc.runtime import Services

__all__ = ["AdminContext", "ok"]


@dataclass
class AdminContext:
    """The public app's services (built by its lifespan) and the guard in front of them."""

    app: Any  # the public AuthsvcApp: its ``state.services`` exist once its lifespan ran
    guard: AdminGuard | None = None

    @property
    def services(self) -> Services:
        services: Services = self.app.state.services
        return services

    async def admin(self, request: Request) -> Admin:
        if self.guard is None:
            services = self.services
            self.guard = AdminGuard(
                self.app,
                services.settings.resolved_issuer,
                services.settings.default_audience,
                services.session_store,
                services.clock.now,
            )
        return await self.guard.admin(request)

    def audit(self, admin: Admin, action: str, target: str) -> None:
        self.services.events.publish(AdminAction(admin=admin.sub, action=action, target=target))


def ok(body: object, status: int = 200) -> Response:
    """A JSON answer; nothing the admin API says is cacheable."""
    return json_response(body, status, headers=NO_STORE)
