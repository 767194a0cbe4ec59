"""pg_ext_memcheck reporter: builds, runs and reports memory-context checks for PostgreSQL extensions."""

__version__ = "0.1.0"
