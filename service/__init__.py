"""The job service: REST API, durable job store, the runner that executes jobs, and their result files.

- :mod:`service.app`: the FastAPI application (routers in :mod:`service.api`, the web console in
  :mod:`service.console`; API keys in :mod:`service.auth`, browser sessions in :mod:`service.sessions`);
- :mod:`service.jobs`: the service layer behind the routes (submission rules, ownership, results);
- :mod:`service.store` on :mod:`service.db`: jobs, shards and events in SQLite or PostgreSQL, with fenced
  leases so that any number of replicas share the work and survive each other's deaths;
- :mod:`service.runner`: plans a job, runs its shards through one engine pool per model, writes Parquet;
- :mod:`service.results`: a job's files on any pyarrow filesystem; :mod:`service.views`: public job views;
- :mod:`service.local`: the same runner in-process for ``moralscope run``.
"""
