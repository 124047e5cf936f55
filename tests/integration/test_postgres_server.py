"""The session PostgreSQL server: real, recent, exact with decimals, one empty database per test."""

from __future__ import annotations

from decimal import Decimal

import psycopg

from tests.pg_server import ExternalPg, PgServer


def test_roundtrip_decimal_exactly(pg_url: str) -> None:
    price = Decimal("12345678901234567890.123456789012345678")
    with psycopg.connect(pg_url) as conn:
        assert conn.info.server_version >= 130000
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone() == (0,)
        conn.execute("CREATE TABLE fills (id serial PRIMARY KEY, price NUMERIC NOT NULL, price_text TEXT NOT NULL)")
        conn.execute("INSERT INTO fills (price, price_text) VALUES (%s, %s)", (price, str(price)))
        conn.commit()
    with psycopg.connect(pg_url) as conn:
        row = conn.execute("SELECT price, price_text FROM fills").fetchone()
    assert row is not None
    got, text = row
    assert isinstance(got, Decimal)
    assert got == price and str(got) == str(price)
    assert Decimal(text) == price


def test_databases_are_isolated(pg_url: str, postgres: PgServer | ExternalPg) -> None:
    other = postgres.fresh_db("other")
    try:
        assert other != pg_url
        with psycopg.connect(pg_url) as conn:
            conn.execute("CREATE TABLE only_here (x int)")
            conn.commit()
            assert conn.execute("SELECT to_regclass('only_here')").fetchone() == ("only_here",)
        with psycopg.connect(other) as conn:
            assert conn.execute("SELECT to_regclass('only_here')").fetchone() == (None,)
    finally:
        postgres.drop_db(other)
