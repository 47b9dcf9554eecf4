"""The graph that runs chart and news concurrently, and the cron runner."""
