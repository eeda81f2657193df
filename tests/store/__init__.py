"""Tests of the store and recovery (a package, so its conftest and helpers keep their names)."""
