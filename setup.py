# The cffi extension is declared here because setuptools reads `cffi_modules`
# only through setup(); everything else lives in pyproject.toml.
from setuptools import setup

setup(cffi_modules=["multistack/native/build.py:ffibuilder"])
