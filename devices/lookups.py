"""`field__any_of=[...]`: membership in a long list of values, bound as one array on PostgreSQL.

Django's `__in` prepares, binds and quotes each value on its own in Python; for the 2,000 device IDs of each of a
discovery chunk's reads that was a fifth of the evaluation's Python time at 100,000 devices. `= ANY(%s)` sends the
list as one array parameter, written here as the array's text (psycopg's own array dumper quoted each element in
Python as well: 2.6 s of a first discovery at 100,000 devices). Other databases get the same `IN (...)`.
"""

from __future__ import annotations

from django.core.exceptions import EmptyResultSet
from django.db.models import CharField, Lookup


@CharField.register_lookup
class AnyOf(Lookup):
    lookup_name = "any_of"
    prepare_rhs = False

    def get_prep_lookup(self) -> list[str]:
        return list(self.rhs)

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        if connection.vendor == "postgresql":
            return f"{lhs} = ANY(%s::text[])", [*lhs_params, array_literal(self.rhs)]
        if not self.rhs:
            raise EmptyResultSet
        return f"{lhs} IN ({', '.join(['%s'] * len(self.rhs))})", [*lhs_params, *self.rhs]


def array_literal(values: list[str]) -> str:
    """PostgreSQL's text form of a one-dimensional text array: every element double-quoted (so that NULL, blanks,
    commas and braces stay text) with its backslashes and double quotes escaped (PostgreSQL's documentation,
    "Arrays", Array Value Input)."""
    return "{" + ",".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values) + "}"
