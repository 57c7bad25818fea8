"""The bundled codelists and the loader's checks (int_rules.codelists)."""

from __future__ import annotations

import dataclasses
import hashlib
import re
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from int_rules.codelists import (
    SOURCE_KINDS,
    Codelist,
    CodelistEntry,
    CodelistSet,
    CodelistSource,
    default_codelists_dir,
    load_codelists,
)
from int_rules.errors import CodelistError, IntRulesError, RulesetError
from int_rules.snomed import check_digit, is_valid_concept_id

REPO = Path(__file__).resolve().parent.parent

GUIDANCE_ONLY = {
    "int_at_risk_emergency_admission": "788921000000108",
    "int_eligible_icp": "936221000000104",
    "int_not_appropriate": "1239441000000103",
    "int_declined": "877011000000107",
    "int_on_pathway": "818241000000105",
    "int_no_longer_on_pathway": "894581000000106",
    "cga": "836131000000104",
}
EMPTY_LOCAL = (
    "loneliness_assessment",
    "memory_assessment",
    "falls_risk_assessment",
    "anticholinergic_burden",
    "named_lead_professional",
    "review_date_set",
)
REQUIRED_IDS = {
    *GUIDANCE_ONLY, *EMPTY_LOCAL, "mdt_review",
    "frailty_mild", "frailty_moderate", "frailty_severe", "frailty_diagnosis",
    "clinical_frailty_scale", "efi_score", "palliative_care", "palliative_care_not_indicated",
    "gsf_stage_a_blue", "gsf_stage_b_green", "gsf_stage_c_yellow", "gsf_stage_d_red",
    "housebound", "no_longer_housebound", "care_home_resident", "carer_has_carer",
    "carer_is_carer", "carer_not_carer", "no_carer", "advance_care_plan", "respect_plan",
    "resuscitation_decision", "care_plan_agreed", "medication_review_structured",
    "medication_review_any", "telehealth_alert", "telehealth_monitoring", "telehealth_declined",
    "emergency_admission_coded", "falls_history", "mood_assessment", "anxiety_assessment",
    "escalation_plan", "gsf_meeting", "palliative_care_team",
}


@pytest.fixture(scope="module")
def bundled() -> CodelistSet:
    return load_codelists()


# --------------------------------------------------------------------------- the bundled set


def test_bundled_set_loads_from_the_repo(bundled: CodelistSet) -> None:
    assert default_codelists_dir() == REPO / "codelists"
    assert set(bundled) >= REQUIRED_IDS
    assert list(bundled) == sorted(bundled)
    assert all(isinstance(bundled[i], Codelist) for i in bundled)
    assert re.fullmatch(r"[0-9a-f]{64}", bundled.sha256)
    assert load_codelists(REPO / "codelists").sha256 == bundled.sha256


def test_guidance_only_pathway_codes_are_unverified(bundled: CodelistSet) -> None:
    for cid, code in GUIDANCE_ONLY.items():
        cl = bundled[cid]
        assert cl.codes == {code}
        assert cl.verified is False
        assert [e.code for e in cl.unverified_codes] == [code]
        assert cl.source.kind == "guidance"
        assert "UNVERIFIED" not in cl.entries[0].term
        assert "only from the guidance" in cl.description
        assert "NHS SNOMED CT browser or TRUD" in cl.description


def test_mdt_review_code_is_verified(bundled: CodelistSet) -> None:
    cl = bundled["mdt_review"]
    assert cl.codes == {"1026051000000106"}
    assert cl.verified and not cl.unverified_codes
    assert cl.source.kind == "guidance"
    assert bundled.term("1026051000000106") == "Multi-agency case management review"


def test_efi_score_and_clinical_frailty_scale_are_not_confused(bundled: CodelistSet) -> None:
    assert "713636003" in bundled["efi_score"].codes
    assert "713636003" not in bundled["clinical_frailty_scale"].codes
    assert bundled["clinical_frailty_scale"].codes == {"763264000"}
    assert bundled.lists_containing("713636003") == ("efi_score",)
    assert bundled.lists_containing("763264000") == ("clinical_frailty_scale",)


def test_empty_local_lists_say_they_cannot_be_checked(bundled: CodelistSet) -> None:
    for cid in EMPTY_LOCAL:
        cl = bundled[cid]
        assert cl.is_empty and cl.codes == frozenset() and cl.entries == ()
        assert cl.verified is False
        assert cl.source.kind == "local"
        assert "cannot be checked from codes until an INT supplies one" in cl.description
    assert "267076002" in bundled["loneliness_assessment"].description
    assert "finding" in bundled["loneliness_assessment"].description
    assert bundled.lists_containing("267076002") == ()


def test_informal_carer_guidance_code_is_carried_unverified(bundled: CodelistSet) -> None:
    cl = bundled["carer_has_carer"]
    assert "751311000000102" in cl.codes
    assert not cl.verified
    assert [e.code for e in cl.unverified_codes] == ["751311000000102"]


def test_care_home_list_is_residents_not_staff(bundled: CodelistSet) -> None:
    cl = bundled["care_home_resident"]
    assert cl.source.ref == "CAREHOME_COD"
    assert {"248171000000108", "160734000", "394923006"} <= cl.codes
    assert not any("staff" in e.term.lower() and "lives" in e.term.lower() for e in cl.entries)


def test_manifest_flags_match_the_codes(bundled: CodelistSet) -> None:
    for cl in bundled.values():
        assert cl.source.kind in SOURCE_KINDS
        assert cl.verified == (not cl.is_empty and not cl.unverified_codes), cl.id
        assert cl.file == f"{cl.id}.csv"


def test_csv_files_are_sorted_lf_utf8_with_the_header() -> None:
    for path in sorted((REPO / "codelists").glob("*.csv")):
        data = path.read_bytes()
        assert b"\r" not in data, path.name
        lines = data.decode("utf-8").split("\n")
        assert lines[0] == "code,term,verified" and lines[-1] == "", path.name
        codes = [line.split(",", 1)[0] for line in lines[1:-1]]
        assert codes == sorted(codes), path.name
        assert all(is_valid_concept_id(c) for c in codes)


def test_every_code_has_one_term_and_the_index_is_complete(bundled: CodelistSet) -> None:
    for cl in bundled.values():
        for e in cl.entries:
            assert cl.id in bundled.lists_containing(e.code)
            assert bundled.term(e.code) == e.term
    assert bundled.lists_containing("123456789") == ()
    assert bundled.term("123456789") is None


def test_docs_table_names_every_codelist(bundled: CodelistSet) -> None:
    docs = (REPO / "docs" / "codelists.md").read_text(encoding="utf-8")
    for cid in bundled:
        assert f"`{cid}`" in docs


def test_the_library_never_reads_the_shared_reference() -> None:
    source = (REPO / "int_rules" / "codelists.py").read_text(encoding="utf-8")
    assert "shared" not in source


def test_values_are_immutable(bundled: CodelistSet) -> None:
    cl = bundled["frailty_severe"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cl.id = "x"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cl.entries[0].code = "1"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        bundled._lists = {}  # type: ignore[misc]
    with pytest.raises(TypeError):
        bundled["x"] = cl  # type: ignore[index]
    with pytest.raises(KeyError, match="no codelist 'nope'"):
        bundled["nope"]


# --------------------------------------------------------------------------- broken copies


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    target = tmp_path / "codelists"
    shutil.copytree(REPO / "codelists", target)
    return target


def manifest_text(folder: Path) -> str:
    return (folder / "codelists.yaml").read_text(encoding="utf-8")


def write_manifest(folder: Path, text: str) -> None:
    (folder / "codelists.yaml").write_text(text, encoding="utf-8")


def rewrite(folder: Path, name: str, text: str, *, fix_hash: bool = True) -> None:
    """Replace a CSV's content (and, unless told not to, its hash in the manifest)."""
    path = folder / name
    old = hashlib.sha256(path.read_bytes()).hexdigest()
    path.write_bytes(text.encode("utf-8"))
    if fix_hash:
        new = hashlib.sha256(path.read_bytes()).hexdigest()
        write_manifest(folder, manifest_text(folder).replace(old, new))


def line_of(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n") + 1


def test_a_copy_loads_like_the_original(folder: Path, bundled: CodelistSet) -> None:
    assert load_codelists(folder).sha256 == bundled.sha256
    assert load_codelists(str(folder)) == load_codelists(folder)


def test_hash_mismatch_says_expected_actual_and_how_to_fix(folder: Path) -> None:
    rewrite(folder, "frailty_severe.csv",
            "code,term,verified\n925861000000102,Severe frailty!,true\n", fix_hash=False)
    with pytest.raises(CodelistError) as info:
        load_codelists(folder)
    msg = str(info.value)
    text = manifest_text(folder)
    sha_line = line_of(text[text.index("id: frailty_severe"):], "sha256:") + line_of(
        text, "id: frailty_severe") - 1
    assert f"codelists.yaml:{sha_line}:" in msg
    assert "frailty_severe.csv" in msg
    assert "expected " in msg and "actual " in msg
    assert "re-run scripts/build_codelists.py or update the manifest" in msg


def test_duplicate_id_is_a_located_manifest_error(folder: Path) -> None:
    text = manifest_text(folder).replace("- id: frailty_mild\n", "- id: frailty_moderate\n")
    write_manifest(folder, text)
    with pytest.raises(RulesetError) as info:
        load_codelists(folder)
    first = text.index("- id: frailty_moderate")
    second = text.index("- id: frailty_moderate", first + 1)
    first_line, second_line = line_of(text, text[first:]), text[:second].count("\n") + 1
    msg = str(info.value)
    assert msg.startswith(f"{folder / 'codelists.yaml'}:{second_line}:")
    assert f"codelist id 'frailty_moderate' appears twice (first at line {first_line})" in msg
    assert info.value.key is not None
    assert re.fullmatch(r"codelists\[\d+\]\.id", info.value.key)


def test_invalid_code_names_its_line_and_row(folder: Path) -> None:
    rewrite(folder, "housebound.csv",
            "code,term,verified\n160689007,Housebound,true\n160689008,Housebound typo,true\n")
    with pytest.raises(CodelistError, match=r"housebound\.csv:3 \(row 2\): '160689008' is not "
                       r"a valid SNOMED CT concept id: the Verhoeff check digit is wrong"):
        load_codelists(folder)


def test_conflicting_terms_across_files(folder: Path) -> None:
    rewrite(folder, "no_longer_housebound.csv",
            "code,term,verified\n160689007,Housebound (no longer?),true\n"
            "760661000000106,No longer housebound,true\n")
    with pytest.raises(CodelistError) as info:
        load_codelists(folder)
    msg = str(info.value)
    assert "housebound.csv:" in msg and "no_longer_housebound.csv:2" in msg
    assert "'Housebound'" in msg and "'Housebound (no longer?)'" in msg


def test_code_listed_twice_in_one_file(folder: Path) -> None:
    rewrite(folder, "frailty_diagnosis.csv",
            "code,term,verified\n248279007,Frailty,true\n404904002,Frail elderly,true\n"
            "248279007,Frailty,true\n")
    with pytest.raises(CodelistError, match=r"frailty_diagnosis\.csv:4 \(row 3\): code 248279007 "
                       r"is listed twice in one file \(first at line 2\)"):
        load_codelists(folder)


def test_verified_list_with_an_unverified_code(folder: Path) -> None:
    rewrite(folder, "frailty_diagnosis.csv",
            "code,term,verified\n248279007,Frailty,true\n404904002,Frail elderly,false\n")
    with pytest.raises(CodelistError, match=r"marked verified: true but .*frailty_diagnosis\.csv:3 "
                       r"has unverified code 404904002"):
        load_codelists(folder)


def test_verified_list_that_is_empty(folder: Path) -> None:
    rewrite(folder, "frailty_diagnosis.csv", "code,term,verified\n")
    with pytest.raises(CodelistError, match="has no codes; an empty codelist must be verified"):
        load_codelists(folder)


def test_bad_verified_cell(folder: Path) -> None:
    rewrite(folder, "frailty_diagnosis.csv",
            "code,term,verified\n248279007,Frailty,yes\n404904002,Frail elderly,true\n")
    with pytest.raises(CodelistError, match=r"frailty_diagnosis\.csv:2 \(row 1\): verified must "
                       r"be 'true' or 'false', got 'yes'"):
        load_codelists(folder)


@pytest.mark.parametrize(
    "content, pattern",
    [
        ("code,term\n248279007,Frailty\n", r"frailty_diagnosis\.csv:1: the header must be"),
        ("code,term,verified\n248279007,Frailty\n", r":2 \(row 1\): expected 3 fields"),
        ("code,term,verified\n248279007,,true\n", r":2 \(row 1\): code 248279007 has no term"),
        ("code,term,verified\n0248279007,Frailty,true\n", r"must not start with 0"),
    ],
)
def test_other_bad_rows(folder: Path, content: str, pattern: str) -> None:
    rewrite(folder, "frailty_diagnosis.csv", content)
    with pytest.raises(CodelistError, match=pattern):
        load_codelists(folder)


def test_missing_file(folder: Path) -> None:
    (folder / "respect_plan.csv").unlink()
    with pytest.raises(CodelistError, match=r"codelists\.yaml:\d+:\d+: codelist 'respect_plan': "
                       r"file .*respect_plan\.csv not found"):
        load_codelists(folder)


def test_csv_not_in_the_manifest(folder: Path) -> None:
    (folder / "stray.csv").write_text("code,term,verified\n", encoding="utf-8")
    with pytest.raises(CodelistError, match=r"stray\.csv is not listed in .*codelists\.yaml"):
        load_codelists(folder)


def test_missing_folder_or_manifest(tmp_path: Path) -> None:
    with pytest.raises(CodelistError, match="codelist folder not found"):
        load_codelists(tmp_path / "nowhere")
    with pytest.raises(CodelistError, match="codelist manifest not found"):
        load_codelists(tmp_path)


def test_unknown_manifest_key_is_located(folder: Path) -> None:
    text = manifest_text(folder).replace(
        "  title: Severe frailty\n", "  title: Severe frailty\n  colour: red\n")
    write_manifest(folder, text)
    with pytest.raises(RulesetError) as info:
        load_codelists(folder)
    line = line_of(text, "  colour: red")
    assert f"codelists.yaml:{line}:" in str(info.value)
    assert "unknown key 'colour'" in str(info.value)
    assert info.value.key is not None and info.value.key.endswith(".colour")


def test_bad_source_kind_is_located(folder: Path) -> None:
    text = manifest_text(folder)
    start = text.index("- id: frailty_severe")
    kind_at = text.index("kind: pcd_refset", start)
    text = text[:kind_at] + "kind: refset" + text[kind_at + len("kind: pcd_refset"):]
    write_manifest(folder, text)
    with pytest.raises(RulesetError) as info:
        load_codelists(folder)
    assert f"codelists.yaml:{line_of(text, 'kind: refset')}:" in str(info.value)
    assert "source kind must be one of guidance, opencodelists" in str(info.value)


def test_missing_manifest_key_and_wrong_type(folder: Path) -> None:
    text = manifest_text(folder)
    start = text.index("- id: frailty_severe")
    desc = text.index("  description:", start)
    end = text.index("  sha256:", desc)
    text = text[:desc] + text[end:]
    write_manifest(folder, text.replace("verified: true\n", "verified: 'yes'\n", 1))
    with pytest.raises(RulesetError) as info:
        load_codelists(folder)
    msg = str(info.value)
    assert "missing key 'description'" in msg
    assert "verified" in msg and "valid boolean" in msg
    assert msg.count("codelists.yaml:") == 2


def test_manifest_must_be_a_mapping(folder: Path) -> None:
    write_manifest(folder, "- just a list\n")
    with pytest.raises(RulesetError, match="must be a mapping"):
        load_codelists(folder)
    write_manifest(folder, "codelists: []\nextra: 1\n")
    with pytest.raises(RulesetError, match=r"codelists\.yaml:2:1: .*unknown key 'extra'"):
        load_codelists(folder)


def test_all_errors_are_int_rules_errors(folder: Path) -> None:
    rewrite(folder, "housebound.csv", "code,term,verified\n1,x,true\n")
    with pytest.raises(IntRulesError):
        load_codelists(folder)


# --------------------------------------------------------------------------- in-memory sets


def _entry(code: str, term: str = "t", verified: bool = True) -> CodelistEntry:
    return CodelistEntry(code, term, verified)


def _codelist(cid: str, entries: tuple[CodelistEntry, ...]) -> Codelist:
    return Codelist(cid, cid, f"{cid}.csv", CodelistSource("local", "test", None, None, None),
                    False, "test list", "0" * 64, entries)


def test_set_rejects_duplicate_ids_and_conflicting_terms() -> None:
    a = _codelist("a", (_entry("248279007", "Frailty"),))
    with pytest.raises(CodelistError, match="appears twice"):
        CodelistSet([a, a])
    b = _codelist("b", (_entry("248279007", "Frail"),))
    with pytest.raises(CodelistError, match="'Frailty' in codelist 'a' but 'Frail'"):
        CodelistSet([a, b])


_payload = st.integers(min_value=100, max_value=10**12).map(lambda n: f"{n}00")
_sctid = _payload.map(lambda p: p + check_digit(p))


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.from_regex(r"[a-z]{1,6}", fullmatch=True),
                       st.lists(_sctid, max_size=6, unique=True), max_size=5))
def test_index_matches_brute_force(lists: dict[str, list[str]]) -> None:
    cls = [_codelist(cid, tuple(_entry(c, f"term {c}") for c in codes))
           for cid, codes in lists.items()]
    cs = CodelistSet(reversed(cls))
    assert list(cs) == sorted(lists)
    every = {c for codes in lists.values() for c in codes}
    for code in every:
        assert cs.lists_containing(code) == tuple(sorted(k for k, v in lists.items() if code in v))
        assert cs.term(code) == f"term {code}"
    assert cs.sha256 == CodelistSet(cls).sha256
