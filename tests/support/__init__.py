"""Real services for tests and benchmarks, started on 127.0.0.1 and stopped afterwards: a PostgreSQL
server (:mod:`tests.support.postgres`), an S3-compatible server (:mod:`tests.support.s3`), and an engine
factory a live server can load (:mod:`tests.support.fake_engine`)."""
