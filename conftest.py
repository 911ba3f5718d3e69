"""Root conftest: thermocheck's own pytest plugin (markers, profiles, law reports) is loaded
through its entry point; this file only adds pytester, which the plugin's tests need."""

pytest_plugins = ["pytester"]
