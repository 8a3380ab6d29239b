"""Direct identifiers in an extract that should be pseudonymised: a scan of every column.

- CHI numbers (Community Health Index, NHS Scotland): ten digits, the first six a date of birth DDMMYY, the tenth a
  modulus-11 check digit over the first nine (weights 10 down to 2; check = 11 - remainder, 11 -> 0, 10 invalid);
- NHS numbers (England and Wales): ten digits with the same modulus-11 check digit, often written 3-3-4;
- full UK postcodes (a unit postcode such as ``KY1 1XX``; the outward code alone, ``KY1``, is a quasi-identifier);
- dates of birth: a column named for birth (``dob``, ``date_of_birth``, ``birth_date``...) holding dates;
- names: a column named for names (``name``, ``forename``, ``surname``...), or whose values are mostly personal
  names (two or more capitalised words, one of them a common forename or surname).

A column is reported when it is named as an identifier, or when most of its non-empty values (at least 80%, and
at least one) are identifiers of one kind: a pseudonym column of random ten-digit tokens passes the check digit
about one time in eleven, so it is not mistaken for NHS numbers.
"""
from __future__ import annotations

import re
from datetime import date

from ..results import Problem
from .table import Table

_TEN = re.compile(r"^\d{3}[ -]?\d{3}[ -]?\d{4}$")
_POSTCODE = re.compile(r"^(GIR ?0AA|[A-PR-UWYZ][A-HK-Y]?\d[A-Z\d]? ?\d[ABD-HJLNP-UW-Z]{2})$", re.I)
_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2}|\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4})$")
_NAME_HEADERS = {"name", "names", "full name", "fullname", "forename", "forenames", "first name", "firstname",
                 "given name", "surname", "last name", "lastname", "family name", "patient name", "client name",
                 "child name", "middle name"}
_DOB_HEADERS = {"dob", "date of birth", "birth date", "birthdate", "dateofbirth", "birthday"}
_CHI_HEADERS = {"chi", "chi number", "chi no", "nhs number", "nhs no", "nhsnumber", "nhs"}
_POSTCODE_HEADERS = {"postcode", "post code", "postal code", "home postcode"}
# common forenames and surnames in Scotland (National Records of Scotland popular names; commonest surnames)
COMMON_NAMES = set("""
jack james oliver lewis noah harris leo alexander rory finlay charlie logan lucas thomas archie daniel
jacob alfie max mason liam john david robert william andrew michael peter paul stephen mark scott craig ryan
euan calum callum ross jamie kyle connor aaron adam sean fraser grant graham iain ian kenneth hamish angus
olivia isla emily sophie ava amelia freya ella grace lily evie mia millie aria ellie harper isabella rosie
sophia lucy jessica chloe hannah emma sarah laura rebecca rachel lauren amy nicola gemma kirsty fiona morag
catriona mhairi eilidh margaret mary elizabeth anne catherine helen karen susan linda lorraine shona heather
smith brown wilson campbell stewart thomson robertson anderson macdonald scott reid murray taylor clark ross
watson morrison paterson young mitchell walker fraser miller mcdonald gray henderson hamilton johnston duncan
graham ferguson kerr davidson bell cameron kelly martin hunter allan mackenzie grant simpson black maclean
mackay mclean wallace russell gibson marshall sutherland kennedy gordon burns wood mcintosh jones white
""".split())


def mod11_ok(digits: str) -> bool:
    """The modulus-11 check digit of CHI and NHS numbers."""
    if len(digits) != 10 or not digits.isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(digits[:9], range(10, 1, -1)))
    check = 11 - total % 11
    check = 0 if check == 11 else check
    return check != 10 and check == int(digits[9])


def is_chi(value: str) -> bool:
    digits = re.sub(r"[ -]", "", value.strip())
    if not _TEN.match(value.strip()) or not mod11_ok(digits):
        return False
    day, month, year = int(digits[0:2]), int(digits[2:4]), int(digits[4:6])
    try:
        date(2000 + year, month, day)
    except ValueError:
        return False
    return True


def is_nhs_number(value: str) -> bool:
    v = value.strip()
    return bool(_TEN.match(v)) and mod11_ok(re.sub(r"[ -]", "", v))


def is_postcode(value: str) -> bool:
    return bool(_POSTCODE.match(value.strip()))


def looks_like_name(value: str) -> bool:
    words = value.strip().replace(",", " ").split()
    if not 2 <= len(words) <= 5 or not all(w[:1].isupper() and w.replace("-", "").replace("'", "").isalpha()
                                           for w in words):
        return False
    return any(w.lower() in COMMON_NAMES for w in words)


def _header(name: str) -> str:
    return re.sub(r"[_\-.]+", " ", name.strip().lower())


def scan(table: Table) -> list[Problem]:
    """``disclosure.direct_identifier`` for every column holding direct identifiers (one problem per column)."""
    out = []
    kinds = (("CHI number", is_chi), ("NHS number", is_nhs_number), ("postcode", is_postcode),
             ("name", looks_like_name))
    for i, col in enumerate(table.header):
        h = _header(col)
        values = [r[i].strip() for r in table.rows if r[i].strip()]
        found = None
        for kind, test in kinds:
            hits = sum(1 for v in values if test(v))
            if values and hits >= 1 and hits >= 0.8 * len(values):
                found = kind
                break
        if found is None:
            if h in _NAME_HEADERS or h.endswith(" name") and h not in {"area name", "ward name", "school name",
                                                                          "council name", "la name", "service name"}:
                found = "name"
            elif h in _DOB_HEADERS or ("birth" in h and any(_DATE.match(v) for v in values)):
                found = "date of birth"
            elif h in _CHI_HEADERS and values:
                found = "CHI or NHS number"
            elif h in _POSTCODE_HEADERS and any(is_postcode(v) for v in values):
                found = "postcode"
        if found:
            example_rows = [n for n, r in enumerate(table.rows, start=1) if r[i].strip()][:3]
            out.append(Problem("disclosure.direct_identifier", f"Column '{col}' holds direct identifiers "
                               f"({found}); an extract under a pseudonymisation approval must not carry them. "
                               "Remove the column or replace it with the approved pseudonym.",
                               {"column": col, "kind": found, "rows": example_rows}))
    return out
