"""`kronos serve`: an HTTP forecasting service with dynamic request batching (FastAPI on uvicorn)."""
