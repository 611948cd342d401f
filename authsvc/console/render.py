"""The console's templates (``web/templates/console/``) rendered with the hosted pages' defences.

The same ``base.html`` look, autoescaping, ``StrictUndefined``, a fresh CSP nonce
for the one inline style sheet and the same headers as the login page (no
script, no framing, no caching, no referrer). The console is an operator's
tool: its templates always come from the package, never ``AUTHSVC_TEMPLATES_DIR``.
"""

from __future__ import annotations

import secrets
import time
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.responses import HTMLResponse

from authsvc.web.pages import PACKAGE_TEMPLATES, page_headers

__all__ = ["ConsolePages", "duration", "when"]


def when(epoch: float | None) -> str:
    """An instant as the console shows it: UTC, to the second."""
    if epoch is None:
        return "—"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


def duration(seconds: float) -> str:
    """``3 d 4 h``, ``2 h 5 min``, ``40 s``: the largest unit and the next one, when not zero."""
    left = max(0, round(seconds))
    units = (("d", 86400), ("h", 3600), ("min", 60), ("s", 1))
    for index, (unit, size) in enumerate(units):
        if left >= size or unit == "s":
            text = f"{left // size} {unit}"
            if index + 1 < len(units):
                next_unit, next_size = units[index + 1]
                rest = left % size // next_size
                if rest:
                    text += f" {rest} {next_unit}"
            return text
    raise AssertionError("unreachable")


class ConsolePages:
    def __init__(self) -> None:
        environment = Environment(
            loader=FileSystemLoader(PACKAGE_TEMPLATES),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
        )
        environment.filters["when"] = when
        environment.filters["day"] = lambda epoch: time.strftime("%Y-%m-%d", time.gmtime(epoch))
        environment.filters["clock"] = lambda epoch: time.strftime("%H:%M:%S UTC", time.gmtime(epoch))
        environment.filters["iso"] = lambda epoch: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
        environment.filters["duration"] = duration
        environment.filters["segment"] = lambda value: quote(str(value), safe="")
        self.environment = environment

    def render(self, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        nonce = secrets.token_urlsafe(18)
        template = self.environment.get_template(f"console/{name}")
        body = template.render(nonce=nonce, **context)
        return HTMLResponse(body, status_code=status_code, headers=page_headers(nonce))

    def message(
        self, title: str, text: str, status_code: int, *, link: tuple[str, str] | None = None
    ) -> HTMLResponse:
        """A page with one message (and a way on): errors, the sign-in's refusals, signed out."""
        return self.render("message.html", status_code, title=title, text=text, link=link, session=None)
