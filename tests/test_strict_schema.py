"""Schema patterns must hold for the whole string, final line break included."""

from __future__ import annotations

import pytest

from glpibot.errors import SpecError
from glpibot.spec.strict_schema import StrictValidator
from glpibot.spec.validate import parse_spec

SYSTEMD = 'glpibot: 1\naction: systemd_remote\nhost: h\nparams:\n  unit: "{unit}"\n  operation: status\n'


def test_pattern_rejects_trailing_newline() -> None:
    validator = StrictValidator({"type": "string", "pattern": "^[a-z.]+$"})

    assert validator.is_valid("nginx.service")
    assert not validator.is_valid("nginx.service\n")


def test_pattern_keeps_escaped_dollar() -> None:
    validator = StrictValidator({"type": "string", "pattern": "^cost\\$"})

    assert validator.is_valid("cost$")
    assert not validator.is_valid("cost")


@pytest.mark.parametrize("unit", ["nginx.service\\n", "nginx.service\\r\\n", "nginx.service\\nrm"])
def test_spec_unit_with_newline_rejected(unit: str) -> None:
    with pytest.raises(SpecError) as raised:
        parse_spec(SYSTEMD.format(unit=unit))

    assert raised.value.issues[0].path == "params.unit"
    assert raised.value.issues[0].line == 5
