"""Reporting: the JSON report, JUnit, GitHub annotations and summary, the live table, plain lines, the plan view."""
