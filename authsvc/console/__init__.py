"""The console at ``/console`` on the admin listener: authsvc administered from a browser.

An OAuth client of authsvc itself (``authsvc-console``: authorization code with
PKCE through the hosted login page) and a client of the admin API: each page
calls the admin API's handlers in-process with the signed-in admin's access
token, so the console can do exactly what the token may, and every change is
the admin API's audit event. Server-rendered, no script; the pages carry the
hosted login's security headers.

    sessions.py   console sessions: the token kept in the database, a cookie naming it, CSRF
    signin.py     /console/login, /console/callback, /console/logout, /console/signed-out
    timeline.py   the key timetable drawn: rows, spans, ticks, markers (pure)
    render.py     the templates (web/templates/console/) and their headers
    context.py    what pages share: the session, the admin API in-process, rendering a page
    keys_pages.py, clients_pages.py, users_pages.py   the pages
    routes.py     console_routes(public_app): the routes; a session or a sign-in, the CSRF check
"""

__all__: list[str] = []
