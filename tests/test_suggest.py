"""Offline language help: a justification in plain words suggests the purposes it is about, says which words
matched, and suggests nothing for words that match no purpose (better no suggestion than a guess)."""
from __future__ import annotations

import json
import subprocess
import sys

from wallet.suggest import suggest_purposes


def test_plain_words_suggest_the_purpose():
    found = suggest_purposes("We need pupils' entitlement so that free school meals are enrolled automatically.")
    assert found[0]["purpose"] == "cead:FreeSchoolMealAutoEnrolment"
    assert {"school", "meals"} <= set(found[0]["matched"])
    assert found[0]["usualBases"] == ["https://www.legislation.gov.uk/eur/2016/679/article/6/1/e"]
    police = suggest_purposes("Police investigation of an offence and prosecution of the offender")
    assert police[0]["purpose"] == "cead:LawEnforcement"
    assert police[0]["usualBases"] == ["https://www.legislation.gov.uk/ukpga/2018/12/section/35"]
    stats = suggest_purposes("Quarterly homelessness applications return for national statistics")
    assert stats[0]["purpose"] == "cead:HomelessnessStatistics"


def test_nothing_matches_nothing_is_suggested():
    assert suggest_purposes("zzz qqq xyzzy") == [] and suggest_purposes("") == []


def test_command_line():
    done = subprocess.run([sys.executable, "-m", "cead.cli", "request", "suggest", "--json",
                           "take-up of unclaimed benefit by eligible families"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[0]["purpose"] == "cead:BenefitTakeUpAnalysis"


def test_command_line_refuses_a_justification_without_words():
    # `cead request suggest ""` printed "No purpose matches these words" and exited 0, as if words had been given
    for empty in ("", "   ", "?!"):
        done = subprocess.run([sys.executable, "-m", "cead.cli", "request", "suggest", empty], capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 2, (empty, done.stdout, done.stderr)
        error = json.loads(done.stderr)["error"]
        assert error["code"] == "input.invalid" and "in your own words" in error["message"]
        assert done.stdout == ""
