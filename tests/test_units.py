import pytest

from livn.spec.units import UnitError, format_quantity, parse_quantity


@pytest.mark.parametrize("text, dimension, value", [
    ("200 um", "length", 200.0), ("0.2 mm", "length", 200.0), ("200µm", "length", 200.0),
    ("250 um/ms", "velocity", 250.0), ("0.25 m/s", "velocity", 250.0),
    ("5e-4 uS", "conductance", 5e-4), ("0.5 nS", "conductance", 5e-4),
    ("-75 mV", "voltage", -75.0), ("1 s", "time", 1000.0), ("3.5 ohm m", "resistivity", 3.5),
])
def test_quantities_convert_to_canonical_units(text, dimension, value):
    assert parse_quantity(text, dimension) == pytest.approx(value)


@pytest.mark.parametrize("text, dimension, found", [
    (200, "length", "bare number"), ("200", "length", "'200'"), ("200 ms", "length", "unit 'ms'"),
    ("fast", "velocity", "'fast'"),
])
def test_bad_quantities_say_what_was_expected_and_found(text, dimension, found):
    with pytest.raises(UnitError) as err:
        parse_quantity(text, dimension)
    assert f"expected a {dimension}" in str(err.value)
    assert found in str(err.value)


def test_format_round_trips():
    for dimension, value in [("length", 200.0), ("conductance", 5e-4), ("velocity", 250.0)]:
        assert parse_quantity(format_quantity(value, dimension), dimension) == pytest.approx(value)
