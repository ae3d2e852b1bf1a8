"""User projections: your own tables, built from the log by `grace replay | project --projection`.

A projection is a Python file defining `PROJECTION = Projection(...)` (see `api`) or a
SQL file (see `load`). Its rows and its position (the last stream sequence applied)
commit in one DuckDB transaction in its own file (`store`), so a crash never applies
an event twice or skips one. `apply` turns frames of the log into batches and rows,
whatever read them; `replay` and `live` are the two ways of feeding it.
"""
