"""Root conftest: loads the harness's pytest plugins (options, fixtures, report)."""

pytest_plugins = ["fixtures.options", "fixtures.runs", "fixtures.samples", "fixtures.evidence", "reports.plugin"]
