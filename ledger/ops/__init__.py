"""Operations: local servers for `./run` and the tests, migrations, rebuild and verify, the demo,
and their commands."""
