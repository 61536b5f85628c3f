"""Metadata lives in setup.cfg; this adds the twisted.plugins drop-in (no __init__.py there)."""
from setuptools import find_packages, setup

setup(packages=find_packages(include=["tau", "tau.*"]) + ["twisted.plugins"])
