"""An organisation's issuer node: keys, signing, status lists, DID documents, the issuing API and DPO pages."""
