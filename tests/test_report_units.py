"""Human units in the terminal table: the prefix that keeps the mantissa in [1, 1000)."""

import pytest

from speedsim.report.units import human, human_many


@pytest.mark.parametrize("value, unit, text", [
    (243.495205, "J", "243.5 J"),  # was "243495.205 mJ"
    (3259273.48 * 2**20, "B", "3.108 TiB"),  # was "3,259,273.48 MiB"
    (801.4e-6, "s", "801.4 µs"),
    (69.653e-3, "J", "69.65 mJ"),
    (544.16e-6, "J", "544.2 µJ"),
    (1536, "B", "1.5 KiB"),
    (1023, "B", "1,023 B"),
    (1.293e9, "", "1.293 G"),
    (2.2e-10, "s", "0.22 ns"),
    (12345.0, "J", "12,345 J"),
    (999.96e-6, "s", "1 ms"),
    (0.0, "J", "0 J"),
])
def test_human(value, unit, text):
    assert human(value, unit) == text


def test_values_in_one_cell_share_the_largest_prefix_and_decimals():
    assert human_many([56.717e-3, 2.487e-3, 0.129e-3], "J") == "56.72 / 2.49 / 0.13 mJ"
    assert human_many([0.0013e-3, 4.268e-3], "J") == "0.001 / 4.268 mJ"
    assert human_many([793.5e-6, 823.7e-6], "s") == "793.5 / 823.7 µs"
