"""FHIR in and out: UK Core Bundles and Bulk Data NDJSON in, CDS Hooks cards out.

* :func:`read_bundle` (and :meth:`PatientRecord.from_fhir`): one patient's FHIR R4 Bundle in UK
  Core shape to a record (:mod:`.bundle`).
* :func:`read_bulk_export`: a FHIR Bulk Data export (``Patient.ndjson``, ``Condition.ndjson``,
  ...) to the population tables (:mod:`.bulk`), for ``int-rules population --fhir``.
* :func:`cds_hooks_response` (and :meth:`Assessment.to_cds_hooks`): an assessment as CDS Hooks
  2.0 cards (:mod:`.cds_hooks`).

The mapping is in docs/fhir.md. Plain JSON walking (and DuckDB's JSON reader for bulk), no
FHIR object model: see that page for why.
"""

from __future__ import annotations

from .bundle import BundleRead, is_fhir, read_bundle, read_bundle_file

__all__ = ["BundleRead", "is_fhir", "read_bundle", "read_bundle_file"]
