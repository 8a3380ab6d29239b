"""Privacy-preserving computations run between organisations' nodes, each node checking its own approval first:

- ``psi``: private set intersection cardinality (OpenMined ``openmined-psi``) over HTTPS, the non-learning party's
  node holding the query budget and drawing the differential-privacy noise;
- ``aggregation``: secure aggregation (MPyC, Shamir secret sharing) across three or more nodes;
- ``attest``: the run attestation the compute parties co-sign (``schemas.attestation``), checked by a gateway with
  ``verifier.attestation.check_attestation``.

See docs/computations.md.
"""
