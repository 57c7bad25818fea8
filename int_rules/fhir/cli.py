"""Reading a record file for the CLI: our JSON, or a FHIR Bundle (told apart by resourceType)."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import RecordError
from ..record import PatientRecord

__all__ = ["read_record_file"]


def read_record_file(path: Path) -> PatientRecord:
    """A record from ``path``: a FHIR Bundle when the JSON has ``resourceType``, else our JSON."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RecordError(None, str(path), f"cannot read file: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return PatientRecord.from_json_file(path)  # reports the JSON error with the file
    if isinstance(data, dict) and "resourceType" in data:
        from .bundle import read_bundle_file

        return read_bundle_file(path).record
    return PatientRecord.from_json_file(path)
