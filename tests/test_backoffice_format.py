"""How the back office writes and reads money and dates: R$ 1.234,56 and dd/mm/aaaa, in the
store's or the convênio's time zone; an amount typed by an operator is centavos, never a float."""

from __future__ import annotations

import datetime

import pytest

from gateway.backoffice import format as fmt


@pytest.mark.parametrize(
    ("centavos", "text"),
    [
        (0, "R$ 0,00"),
        (5, "R$ 0,05"),
        (578, "R$ 5,78"),
        (11_000, "R$ 110,00"),
        (123_456, "R$ 1.234,56"),
        (100_000_000, "R$ 1.000.000,00"),
        (-1_200, "-R$ 12,00"),
    ],
)
def test_amounts_are_written_as_reais(centavos: int, text: str) -> None:
    assert fmt.brl(centavos) == text


@pytest.mark.parametrize(
    ("typed", "centavos"),
    [("1.234,56", 123_456), ("R$ 110,00", 11_000), ("110", 11_000), ("0,5", 50), ("200,00", 20_000), ("1234", 123_400)],
)
def test_an_amount_an_operator_types_is_centavos(typed: str, centavos: int) -> None:
    assert fmt.parse_brl(typed) == centavos


@pytest.mark.parametrize("typed", ["", "1,234.56", "12,345", "abc", "1.23,45", "1e3", "R$"])
def test_anything_else_is_refused(typed: str) -> None:
    with pytest.raises(ValueError, match="1.234,56"):
        fmt.parse_brl(typed)


def test_dates_are_dd_mm_aaaa_in_the_zone_given() -> None:
    at = datetime.datetime(2026, 12, 2, 2, 30, tzinfo=datetime.UTC)  # 23:30 on the 1st in São Paulo
    assert fmt.data(at) == "01/12/2026"
    assert fmt.data(at, "America/Noronha") == "02/12/2026"
    assert fmt.data_hora(at, "America/Manaus") == "01/12/2026 22:30"
    assert fmt.data("2026-12-02") == "02/12/2026"
    assert fmt.parse_data("02/12/2026") == fmt.parse_data("2026-12-02") == datetime.date(2026, 12, 2)
