"""Reading a record file for the CLI: our JSON, or a FHIR Bundle (told apart by resourceType)."""

from __future__ import annotations

from pathlib import Path

from ..errors import RecordError
from ..record import PatientRecord, load_json_document

__all__ = ["read_record_file"]


def read_record_file(path: Path) -> PatientRecord:
    """A record from ``path``: a FHIR Bundle when the JSON has ``resourceType``, else our JSON.

    The file is read as every record file is (:func:`~int_rules.record.load_json_document`:
    UTF-8 only, no duplicate keys, bounded nesting), and errors name the file.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RecordError(None, str(path), f"cannot read file: {exc.strerror}") from None
    try:
        data = load_json_document(raw)
    except RecordError as exc:
        exc.args = (f"{path}: {exc.args[0]}",)
        raise
    if isinstance(data, dict) and "resourceType" in data:
        from .bundle import read_bundle

        try:
            return read_bundle(data).record
        except RecordError as exc:
            exc.args = (f"{path}: {exc.args[0]}",)
            raise
    return PatientRecord.from_json_file(path)
