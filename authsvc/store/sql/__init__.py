"""SQLAlchemy 2 (async) storage for SQLite and PostgreSQL, one code path."""
