"""pytest configuration shared by the integration and e2e tests."""

from etl_core.testing.hypothesis_profiles import load_profile

load_profile()
