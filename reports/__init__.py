"""The report: a pytest plugin that collects each claim's evidence into results.json, and renderers."""
