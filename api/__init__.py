"""The job API: FastAPI in front of the Prefect deployments (``lightbox api``)."""
