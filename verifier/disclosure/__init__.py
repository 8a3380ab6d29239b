"""Statistical disclosure control on real outputs, at the provider's gateway: each check is a function that reads
the table (or the contributor-level data the provider holds) and returns its problems (``disclosure.*`` codes).

- ``suppression.audit``: can a suppressed cell be recovered from the table's totals (rows, columns, marginal and
  hierarchical totals, long and wide layouts) to within the protection interval?
- ``differencing.check``: does the difference from an earlier release of the same series reveal a small count?
- ``dominance.check``: (n, k) dominance and the p% rule on contributor-level data;
- ``records.k_anonymity`` / ``records.l_diversity``: record-level extracts over declared quasi-identifiers;
- ``identifiers.scan``: direct identifiers (names, CHI and NHS numbers with their check digits, postcodes, dates of
  birth) in an extract that should be pseudonymised.

The definitions are in docs/privacy-protocols.md ("Disclosure control on real outputs").
"""
from .table import Table, read_table

__all__ = ["Table", "read_table"]
