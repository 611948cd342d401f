"""The admin API (and, beside it, the console): authsvc administered over HTTP.

A resource server of authsvc's own: it takes authsvc's access tokens with the
``authsvc:admin`` scope, checked by ``authsvc.verifier`` like any resource
server would, on the admin listener (``AUTHSVC_ADMIN_BIND``) only. Errors are
RFC 7807 problem documents; every change is an audit event naming the admin.
"""

__all__: list[str] = []
