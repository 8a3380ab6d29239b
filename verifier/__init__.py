"""Cead's stateless verifier: DID resolution, proof checking, status lists, delegation and policy evaluation.

No database and no private keys live here; a gateway can install this package alone.
"""
