"""pytest configuration shared by every unit test under src/python."""

from etl_core.testing.hypothesis_profiles import load_profile

load_profile()
