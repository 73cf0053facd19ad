"""Test helpers shared by the test files (tiny real TFLite bundles: :mod:`tests.helpers.tiny_bundles`)."""
