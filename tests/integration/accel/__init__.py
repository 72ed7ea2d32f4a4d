# A package, so that this folder's conftest.py is imported as accel.conftest and
# does not replace tests/integration/conftest.py under the module name "conftest".
