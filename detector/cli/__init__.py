"""L6: typer commands; the only place that reads the environment."""
