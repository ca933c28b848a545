"""Development tooling: `python -m service dev`, embedded servers and development tokens.

Only the `dev` and `token` commands, the tests and the benchmarks import this package; the api
and the worker never do (a test checks it), so nothing here can change how production runs.

- `runner`: `python -m service dev`, the whole service on one machine
- `postgres`, `redis`: embedded servers when the configured ones do not answer
- `supervision`: starting, health-waiting and stopping those servers' processes
- `keys`: the development signing key and the tokens it mints
"""
