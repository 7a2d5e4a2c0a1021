"""Effects of running jobs: worker subprocesses, monitoring, retries."""
