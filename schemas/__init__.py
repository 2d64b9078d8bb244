"""pandera schemas: the raw Xente transactions, the cleaned transactions, the feature snapshot.

Schemas import no pipeline code; the allowed value sets live in :mod:`schemas.vocab`.
"""
