"""Running a decided plan: the runner, retries, rate limits, the journal and delivery of the files."""
