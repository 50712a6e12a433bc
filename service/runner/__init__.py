"""The runner: executes queued jobs in background threads (plan → reason → score → aggregate → write).

- :mod:`service.runner.plan`: a job's prompts cut into shards, and per-sample seeds (pure);
- :mod:`service.runner.rows`: scored prompts → rows of the samples table, reasoning parts;
- :mod:`service.runner.execute`: one job from ``validating`` to a terminal state;
- :mod:`service.runner.scheduler`: the threads that claim jobs from the store, with leases.
"""
