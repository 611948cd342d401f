"""SQLAlchemy 2 (async) storage for SQLite and PostgreSQL, one code path."""

__all__: list[str] = []
