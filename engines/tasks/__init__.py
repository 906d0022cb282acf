"""Long jobs: the gateway's task queue, the task worker deployment and result callbacks."""
